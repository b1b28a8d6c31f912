"""`lifecycle send`: produce order events from files to the orders topic, keyed by customer."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ..config import Config, load_config
from ..inputs.time_order import OrderingStats, in_time_order
from ..kafka.batches import Batches, HandOverFailed
from ..kafka.client import client_settings
from ..kafka.partitioning import partition_for
from .common import UsageError, add_arrival_order_option, add_input_options, check_readable, read_inputs
from .kafka_commands import create_topics_or_explain


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "send",
        help="produce order events from JSONL/CSV files to the orders topic",
        description="Sends each line as one message, in file order, keyed by customer_id (lines "
        "that are not valid JSON are sent as they are, so the worker dead-letters them).",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="JSONL files (- is stdin, .gz ok)")
    add_sending_options(parser)
    parser.set_defaults(run=run)


def add_sending_options(parser: argparse.ArgumentParser) -> None:
    """--config, the input format options and --arrival-order: what `send_inputs` reads."""
    parser.add_argument("--config", metavar="PATH")
    add_input_options(parser)
    add_arrival_order_option(parser, "send")


def customer_key(raw: bytes) -> bytes | None:
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    customer = event.get("customer_id") if isinstance(event, dict) else None
    return customer.encode() if isinstance(customer, str) and customer else None


async def send_lines(config: Config, lines: Any, progress: Any = None) -> int:
    """Send raw event lines in order; returns how many were sent."""
    producer = AIOKafkaProducer(
        **client_settings(config),
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,  # the size of each batch `Batches` fills
        max_request_size=2 * 1024 * 1024,
    )
    await producer.start()
    batches = Batches(lambda: producer)
    sent = 0
    try:
        for raw in lines:
            key = customer_key(raw)
            partition = partition_for(key.decode(), config.kafka.partitions) if key else 0
            await batches.send([(config.topics.orders, key, raw, partition)])
            sent += 1
            if progress is not None:
                progress.update(1)
        await batches.confirmed()
    finally:
        await producer.stop()
    return sent


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    check_readable(args.inputs)
    create_topics_or_explain(config)
    send_inputs(args, config)
    return 0


def send_inputs(args: argparse.Namespace, config: Config) -> int:
    """Send the input files of `args` (see `add_input_options`) to the orders topic, in
    occurred_at order unless `args.arrival_order`; says what it did on stderr."""
    skipped = 0
    ordering = OrderingStats()

    def lines() -> Any:
        nonlocal skipped
        sourced: Any = read_inputs(args)
        if not args.arrival_order:
            # the worker applies a late event at its partition's clock: history goes in time order
            sourced = in_time_order(sourced, ordering)
        for path, line in sourced:
            if line.error is not None:
                print(f"skipped {path}:{line.line}: {line.error}", file=sys.stderr)
                skipped += 1
                continue
            yield line.raw

    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(unit="events", desc="send", file=sys.stderr)
    try:
        sent = asyncio.run(send_lines(config, lines(), progress))
    except OSError as error:
        raise UsageError(f"cannot send to Kafka at {config.kafka.bootstrap_servers}: {error}") from None
    except (HandOverFailed, KafkaError) as error:
        raise UsageError(f"sending to {config.topics.orders} failed: {error!r}") from None
    if progress is not None:
        progress.close()
    print(
        f"sent {sent} events to {config.topics.orders}" + (f", skipped {skipped}" if skipped else ""),
        file=sys.stderr,
    )
    if ordering.out_of_order:
        print(
            f"sent in occurred_at order: {ordering.out_of_order} of {ordering.lines} lines came after a "
            "later one in the input (--arrival-order keeps the files' order)",
            file=sys.stderr,
        )
    return sent
