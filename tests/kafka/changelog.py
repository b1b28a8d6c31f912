"""A customers changelog of synthetic one-timers, for recovery tests and benchmarks."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.kafka.partitioning import partition_for
from stream.lifecycle import CustomerState, State
from stream.worker.state import StoredCustomer, encode_stored

DAY_US = 86_400_000_000


async def fill_changelog(bootstrap: str, topic: str, customers: int, partitions: int) -> None:
    """Create the compacted changelog topic and write `customers` stored states into it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    # bought a day ago: one-timers whose deadline is weeks away, so taking up fires nothing
    at = time.time_ns() // 1000 - DAY_US
    pending = []
    try:
        for i in range(customers):
            customer_id = f"r{i:08d}"
            state = CustomerState(
                customer_id=customer_id,
                created_at=at,
                id_prefix="0" * 8 + "-0000-0000-0000-0000",
                state=State.ONE_TIMER,
                state_since=at,
                seq=1,
                order_count=1,
                first_order_at=at,
                last_order_at=at,
                spend={"EUR": 1000},
                deadline=at + 30 * DAY_US,
            )
            pending.append(
                await producer.send(
                    topic,
                    encode_stored(StoredCustomer(state)),
                    key=customer_id.encode(),
                    partition=partition_for(customer_id, partitions),
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
