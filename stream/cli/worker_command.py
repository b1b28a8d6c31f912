"""`lifecycle worker`: the live Faust worker."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..config import Config, load_config
from ..replay.worker_group import ensure_changelog_topics
from ..worker.faust_internals.versions import UntestedVersion, check_versions
from .common import UsageError, unreachable
from .kafka_commands import create_topics_or_explain


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "worker",
        help="run the live worker: orders in, transitions out",
        description="Consumes the orders topic, keeps customer state in Faust tables and publishes "
        "transitions, customer states and dead letters. Creates missing topics first.",
    )
    parser.add_argument("--config", metavar="PATH")
    parser.add_argument("--store", choices=("rocksdb", "memory"), help="table storage (default rocksdb)")
    parser.add_argument("--data-dir", help="where RocksDB tables live (worker.data_dir)")
    parser.add_argument("--web-port", type=int, help="HTTP port for metrics and health (worker.web_port)")
    parser.add_argument("--loglevel", default="warning", choices=("debug", "info", "warning", "error"))
    parser.set_defaults(run=run)


def worker_config(args: argparse.Namespace) -> Config:
    """The config file and environment, with command-line options on top, checked as one."""
    options = {"store": args.store, "data_dir": args.data_dir, "web_port": args.web_port}
    chosen = {key: value for key, value in options.items() if value is not None}
    return load_config(args.config, overrides={"worker": chosen})


def run(args: argparse.Namespace) -> int:
    config = worker_config(args)
    try:
        check_versions()
    except UntestedVersion as error:
        raise UsageError(str(error)) from None
    create_topics_or_explain(config)
    try:
        # faust makes them too, but only once running: a table write that came first (an
        # erasure seconds after a first start) found no changelog partitions and stopped the
        # worker (exit 70; seen once under load in the real-broker tests)
        asyncio.run(ensure_changelog_topics(config))
    except Exception as error:  # aiokafka raises several kinds for an unreachable broker
        raise unreachable(config, error) from None
    import faust

    from ..worker.app import create_app

    app, _ = create_app(config)
    faust.Worker(app, loglevel=args.loglevel, quiet=True).execute_from_commandline()
    return 0
