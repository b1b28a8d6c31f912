"""`lifecycle tail`: print transitions (and segment changes) as they arrive, one readable line each."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from ..config import load_config
from ..kafka.client import reader_settings
from .common import unreachable
from .display import change_line


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "tail", help="print transitions, segment changes and trigger firings as they arrive"
    )
    parser.add_argument("--config", metavar="PATH")
    parser.add_argument(
        "--topic",
        action="append",
        help="a topic to read (repeatable); default: the transitions topic, and the segment "
        "changes and trigger firings topics when segments and triggers are configured",
    )
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the raw JSON lines")
    parser.set_defaults(run=run)


async def tail(config: Any, topics: list[str], from_beginning: bool, as_json: bool) -> None:
    consumer = AIOKafkaConsumer(**reader_settings(config), enable_auto_commit=False, group_id=None)
    try:
        await consumer.start()
    except Exception as error:  # aiokafka raises several kinds for an unreachable broker
        await consumer.stop()
        raise unreachable(config, error) from None
    try:
        # the engine's topics all have kafka.partitions partitions
        tps = [TopicPartition(topic, p) for topic in topics for p in range(config.kafka.partitions)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        async for message in consumer:
            if message.value is None:
                continue
            if as_json:
                print(message.value.decode(), flush=True)
            else:
                print(change_line(orjson.loads(message.value)), flush=True)
    finally:
        await consumer.stop()


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        topics = args.topic or [config.topics.transitions]
        if not args.topic and config.segments:
            topics.append(config.topics.segment_changes)
        if not args.topic and config.triggers:
            topics.append(config.topics.triggers)
        asyncio.run(tail(config, topics, args.from_beginning, args.json))
    except BrokenPipeError:
        sys.stderr.close()
    return 0
