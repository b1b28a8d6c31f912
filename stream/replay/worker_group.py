"""What a rebuild asks of the cluster before it writes the worker's state: that the worker
group has no member, and that the tables' changelog topics exist."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError

from ..config import Config
from ..kafka.client import client_settings
from ..worker.state import CLOCKS_TABLE, CUSTOMERS_TABLE, ERASURES_TABLE, changelog_topic

# tries, half a second apart, while a new broker makes its offsets topic
COORDINATOR_ATTEMPTS = 60


class GroupActive(RuntimeError):
    """The worker group has members: a rebuild would race a running worker."""


async def refuse_if_group_has_members(config: Config) -> None:
    group = config.worker.app_id
    admin = AIOKafkaAdminClient(**client_settings(config))
    await admin.start()
    try:
        for attempt in range(COORDINATOR_ATTEMPTS):
            try:
                described = await admin.describe_consumer_groups([group])
                break
            except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
                # a new broker creates its offsets topic on the first group request
                if attempt == COORDINATOR_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()
    for response in described:
        for _error_code, group_id, state, _protocol_type, _protocol, members, *_ in response.groups:
            if group_id == group and members:
                raise GroupActive(
                    f"the worker group {group} has {len(members)} member(s) ({state}); stop every worker "
                    "before a rebuild"
                )


async def ensure_changelog_topics(config: Config) -> None:
    """The tables' changelog topics, compacted, as faust would create them on first start."""
    names = [
        changelog_topic(config.worker.app_id, t) for t in (CUSTOMERS_TABLE, CLOCKS_TABLE, ERASURES_TABLE)
    ]
    admin = AIOKafkaAdminClient(**client_settings(config))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(n, config.kafka.partitions, 1, topic_configs={"cleanup.policy": "compact"})
                    for n in missing
                ]
            )
    finally:
        await admin.close()
