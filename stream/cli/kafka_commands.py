"""`lifecycle local-kafka start|stop|status` and `lifecycle topics create`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..config import load_config
from ..kafka.local import Broker, LocalKafkaError
from ..kafka.topics import TopicMismatch, ensure_topics, required_topics
from .common import UsageError, unreachable

DEFAULT_PORT = 9092
DEFAULT_DATA_DIR = "var/kafka"


def register(commands: Any) -> None:
    local = commands.add_parser(
        "local-kafka",
        help="run a local Apache Kafka broker (KRaft, one node on 127.0.0.1)",
        description="Fetches the official Apache Kafka broker from Maven Central on first use "
        "(cached), formats its storage, starts one KRaft node on 127.0.0.1 and waits until it serves.",
    )
    local.add_argument("action", choices=("start", "stop", "status"))
    local.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"client port (default {DEFAULT_PORT}; the controller uses the next one)",
    )
    local.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"default {DEFAULT_DATA_DIR}")
    local.set_defaults(run=run_local_kafka)

    topics = commands.add_parser("topics", help="create the engine's topics")
    topics.add_argument("action", choices=("create", "list"))
    topics.add_argument("--config", metavar="PATH")
    topics.set_defaults(run=run_topics)


def run_local_kafka(args: argparse.Namespace) -> int:
    broker = Broker(args.port, Path(args.data_dir).resolve())
    try:
        if args.action == "start":
            started = broker.start()
            print(broker.bootstrap if started else f"{broker.bootstrap} (already running)")
        elif args.action == "stop":
            print("stopped" if broker.stop() else "not running")
        else:
            pid = broker.pid()
            running = pid is not None and broker.serving()
            print(f"running at {broker.bootstrap} (pid {pid})" if running else "not running")
            return 0 if running else 3
    except LocalKafkaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def run_topics(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.action == "list":
        for spec in required_topics(config):
            print(f"{spec.name}\t{spec.partitions}\t{spec.settings or ''}")
        return 0
    created = create_topics_or_explain(config)
    print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


def create_topics_or_explain(config: Any) -> list[str]:
    try:
        return asyncio.run(ensure_topics(config))
    except TopicMismatch as mismatch:
        raise UsageError(str(mismatch)) from None
    except Exception as error:  # aiokafka raises several kinds for an unreachable broker
        raise unreachable(config, error) from None
