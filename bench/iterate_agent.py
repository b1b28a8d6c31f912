"""The baseline of issue 12's worker target: a faust agent that only iterates a topic.

Same faust settings as the worker where they bear on consuming (raw bytes, earliest offsets,
the worker's commit interval); no decoding, no table, no sends. Its committed offsets give
its events/s, measured like the worker's by bench/worker_bench.py.

    .venv/bin/python bench/iterate_agent.py CONFIG.toml WEB_PORT
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import faust

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream.config import load_config
from stream.kafka.client import faust_broker_url, faust_credentials


def main() -> None:
    config = load_config(sys.argv[1])
    app = faust.App(
        config.worker.app_id,
        broker=faust_broker_url(config),
        broker_credentials=faust_credentials(config),
        store="memory://",
        web_port=int(sys.argv[2]),
        topic_partitions=config.kafka.partitions,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
    )
    source = app.topic(config.topics.orders, key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="iterate")
    async def iterate(stream: Any) -> None:
        async for _ in stream.events():
            pass

    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
