"""The Kafka topics the engine reads and writes, and creating them with the right shape.

Faust declares only its own internal topics (changelogs); these are created here, all with
the configured partition count so that everything touching one customer shares a partition
number. An existing topic with another count stops the worker with what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ..config import Config
from ..lifecycle import Transition, all_transition_names
from ..lifecycle.transitions import Change, SegmentChange
from .client import client_settings

HOUR_MS = 3_600_000


class TopicMismatch(RuntimeError):
    """An existing topic whose partition count differs from the configuration."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    settings: dict[str, str] = field(default_factory=dict)
    co_partitioned: bool = True


def per_name_topic(config: Config, name: str) -> str:
    return f"{config.topics.transitions}.{name}"


# segment names have no hyphen, so no segment's topic can be this one
CLASS_CHANGES = "class-changes"


def per_segment_topic(config: Config, segment: str | None) -> str:
    """Fresh changes of one segment; class changes (segment None) have a topic of their own."""
    return f"{config.topics.segment_changes}.{segment or CLASS_CHANGES}"


def change_topic(config: Config, change: Change) -> str:
    """The topic that carries every change of its kind, fresh or replayed."""
    if isinstance(change, Transition):
        return config.topics.transitions
    if isinstance(change, SegmentChange):
        return config.topics.segment_changes
    return config.topics.triggers


def per_trigger_topic(config: Config, trigger: str) -> str:
    return f"{config.topics.triggers}.{trigger}"


def required_topics(config: Config) -> list[TopicSpec]:
    n = config.kafka.partitions
    t = config.topics
    specs = [
        TopicSpec(t.orders, n),
        # Ticks only move clocks forward; an hour of them is plenty to replay after a crash.
        TopicSpec(t.ticks, n, {"retention.ms": str(HOUR_MS)}),
        TopicSpec(t.transitions, n),
        TopicSpec(t.customer_state, n, {"cleanup.policy": "compact"}),
        TopicSpec(t.dead_letters, n),
    ]
    specs += [
        TopicSpec(per_name_topic(config, name), n, co_partitioned=False) for name in all_transition_names()
    ]
    if config.segments:
        specs.append(TopicSpec(t.segment_changes, n))
        names: list[str | None] = [s.name for s in config.segments.segments]
        if config.segments.classes:
            names.append(None)
        specs += [TopicSpec(per_segment_topic(config, name), n, co_partitioned=False) for name in names]
    if config.triggers:
        specs.append(TopicSpec(t.triggers, n))
        specs += [
            TopicSpec(per_trigger_topic(config, trigger.name), n, co_partitioned=False)
            for trigger in config.triggers.triggers
        ]
    return specs


async def ensure_topics(config: Config, *, create: bool = True) -> list[str]:
    """Create missing topics; raise TopicMismatch for a co-partitioned topic of the wrong size.

    Returns the names of the topics created.
    """
    admin = AIOKafkaAdminClient(**client_settings(config))
    await admin.start()
    try:
        specs = required_topics(config)
        existing = set(await admin.list_topics())
        present = [s.name for s in specs if s.name in existing]
        described = await admin.describe_topics(present) if present else []
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        for spec in specs:
            found = counts.get(spec.name)
            if found is not None and found != spec.partitions and spec.co_partitioned:
                raise TopicMismatch(
                    f"topic {spec.name} has {found} partitions but kafka.partitions is {spec.partitions}; "
                    f"set kafka.partitions = {found} (LIFECYCLE_KAFKA_PARTITIONS={found}), or recreate the "
                    f"topic with {spec.partitions} partitions"
                )
        missing = [s for s in specs if s.name not in existing]
        if missing and create:
            await admin.create_topics(
                [NewTopic(s.name, s.partitions, 1, topic_configs=s.settings) for s in missing]
            )
        return [s.name for s in missing] if create else []
    finally:
        await admin.close()
