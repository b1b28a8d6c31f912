"""`lifecycle feed`: a live stream of generated orders, stamped now, sent to the orders topic."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from ..config import Config, load_config
from ..inputs.livefeed import live_orders
from ..kafka.client import client_settings
from ..kafka.partitioning import partition_for
from .common import UsageError
from .kafka_commands import create_topics_or_explain


def register(commands: Any) -> None:
    parser = commands.add_parser("feed", help="send a live stream of generated orders (for demos)")
    parser.add_argument("--config", metavar="PATH")
    parser.add_argument("--rate", type=float, default=2.0, help="events per second (default 2)")
    parser.add_argument("--duration", type=float, default=None, help="seconds; default: until Ctrl-C")
    parser.add_argument("--seed", type=int, default=None)
    parser.set_defaults(run=run)


async def feed(config: Config, rate: float, duration: float | None, seed: int | None) -> int:
    producer = AIOKafkaProducer(**client_settings(config), acks="all")
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        for event in live_orders(seed):
            if duration is not None and time.monotonic() - started >= duration:
                break
            key = event["customer_id"]
            await producer.send_and_wait(
                config.topics.orders,
                orjson.dumps(event),
                key=key.encode(),
                partition=partition_for(key, config.kafka.partitions),
            )
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
    finally:
        await producer.stop()
    return sent


def run(args: argparse.Namespace) -> int:
    if args.rate <= 0:
        raise UsageError("--rate must be above zero")
    config = load_config(args.config)
    create_topics_or_explain(config)
    sent = asyncio.run(feed(config, args.rate, args.duration, args.seed))
    print(f"fed {sent} events", file=sys.stderr)
    return 0
