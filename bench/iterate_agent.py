"""The baseline of issue 12's worker target: a faust agent that only iterates a topic.

Same faust settings as the worker where they bear on consuming (raw bytes, earliest offsets,
the worker's commit interval); no decoding, no table, no sends. Its committed offsets give
its events/s, measured like the worker's by bench/worker_bench.py.

With PRODUCE (a number), it also hands each event's bytes that many times to aiokafka, as
the worker hands it its outputs and changelog records (same partition, a topic of its own;
acks not awaited): what consuming and producing alone cost, with no rules and no state.
With `batched` after it, the messages go to aiokafka in batches, as the worker sends them
(`stream.kafka.batches`: a batch per partition, handed over full and every 20 ms).

    .venv/bin/python bench/iterate_agent.py CONFIG.toml WEB_PORT [PRODUCE [batched]]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import faust

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream.config import load_config
from stream.kafka.batches import Batches
from stream.kafka.client import faust_broker_url, faust_credentials
from stream.worker.app import LINGER_SECONDS


def main() -> None:
    config = load_config(sys.argv[1])
    app = faust.App(
        config.worker.app_id,
        broker=faust_broker_url(config),
        broker_credentials=faust_credentials(config),
        store="memory://",
        datadir=str(config.worker.data_dir),  # not the working directory, which is the repository
        web_port=int(sys.argv[2]),
        topic_partitions=config.kafka.partitions,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
    )
    source = app.topic(config.topics.orders, key_serializer="raw", value_serializer="raw")
    produce = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    batched = len(sys.argv) > 4 and sys.argv[4] == "batched"
    sink = app.topic(f"{config.topics.orders}.sink", partitions=config.kafka.partitions)

    # as the worker sends: a batch per partition, handed over full and every 20 ms
    batches = Batches(app.producer._ensure_producer, lambda topic, ack, records: None)  # acks not awaited

    @app.timer(interval=LINGER_SECONDS)
    async def hand_over_batches() -> None:
        if batched:
            await batches.hand_over_all()

    @app.agent(source, name="iterate")
    async def iterate(stream: Any) -> None:
        if not produce:
            async for _ in stream.events():
                pass
            return
        await sink.maybe_declare()
        kafka = app.producer._ensure_producer()
        name = sink.get_topic_name()
        if not batched:
            async for event in stream.events():
                message = event.message
                for _ in range(produce):
                    await kafka.send(name, message.value, key=message.key, partition=message.partition)
            return
        async for event in stream.events():
            message = event.message
            output = (name, message.key, message.value, message.partition)
            await batches.send([output] * produce)

    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
