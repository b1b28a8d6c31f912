"""The messages the worker produces for what it handled, held in order until the driver
drains them: transitions and segment changes (all, and per name when fresh), customer
states, dead letters, orders re-routed to their customer's partition, and the customers
table's changelog records."""

from __future__ import annotations

from typing import NamedTuple

import orjson

from ..config import Config
from ..inputs.messages import TopicSource, encode, rejection
from ..kafka.topics import per_name_topic, per_segment_topic, per_trigger_topic
from ..lifecycle import Transition
from ..lifecycle.experiments import ExperimentEntry, held_out
from ..lifecycle.transitions import Change, SegmentChange
from .metrics import WorkerMetrics


class Output(NamedTuple):
    """One message for the driver to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    # the orders partition whose message caused it: in exactly-once mode, whose transaction
    source: int


class Outputs:
    def __init__(self, config: Config, customers_changelog: str, metrics: WorkerMetrics) -> None:
        self.config = config
        self.topics = config.topics
        self.customers_changelog = customers_changelog
        self.metrics = metrics
        self.pending: list[Output] = []
        # Left out of exactly-once mode's transactions: nobody outside the engine reads them,
        # and their duplicates change nothing. The state records carry the offsets they were
        # written at (a restart sends again what came after the committed offset), and an
        # order sent on to its customer's partition twice is a duplicate there. Kept out, the
        # orders topic holds no transaction markers for the worker to read around.
        self.outside_transactions = frozenset({customers_changelog, config.topics.orders})

    def emit(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None, source: int
    ) -> None:
        self.pending.append(Output(topic, key, value, partition, source))

    def changelog(self, number: int, key: bytes, value: bytes | None) -> None:
        """A record of the customers table's changelog, sent in line with the outputs.

        Customer records go out as outputs, not through faust's table, so that every record
        of a partition's changelog (written, or sent again at take-up) leaves in the order it
        was made, on one path, for the cost of one producer call each."""
        self.pending.append(Output(self.customers_changelog, key, value, number, number))

    def customer_state(self, number: int, key: bytes, record: bytes | None) -> None:
        self.emit(self.topics.customer_state, key, record, number, number)

    def change(self, change: Change, raw: bytes, source: int) -> None:
        """A transition, a segment change or a firing, encoded as `raw`, caused by a message
        of orders partition `source`.

        On its per-name topic (the one email tools subscribe to) only when fresh and held
        out by no experiment (docs/experiments.md)."""
        key = change.customer_id.encode()
        to_name = not change.replayed and not held_out(change.experiments)
        if isinstance(change, Transition):
            self.transition(key, raw, change.transition, source, to_name=to_name)
        elif isinstance(change, SegmentChange):
            self.segment_change(key, raw, change.segment, source, to_name=to_name)
        else:
            self.firing(key, raw, change.trigger, source, to_name=to_name)

    def change_again(self, key: bytes, raw: bytes, source: int) -> None:
        """A change sent before, from its stored encoding: a segment change has a `change`
        kind, a firing a `trigger`, a transition neither."""
        sent = orjson.loads(raw)
        entries = [ExperimentEntry(e["name"], e["group"]) for e in sent.get("experiments", ())]
        to_name = not sent["replayed"] and not held_out(entries)
        if "change" in sent:
            self.segment_change(key, raw, sent["segment"], source, to_name=to_name)
        elif "trigger" in sent:
            self.firing(key, raw, sent["trigger"], source, to_name=to_name)
        else:
            self.transition(key, raw, sent["transition"], source, to_name=to_name)

    def transition(self, key: bytes, raw: bytes, name: str, source: int, *, to_name: bool) -> None:
        self.emit(self.topics.transitions, key, raw, None, source)
        if to_name:
            self.emit(per_name_topic(self.config, name), key, raw, None, source)

    def segment_change(
        self, key: bytes, raw: bytes, segment: str | None, source: int, *, to_name: bool
    ) -> None:
        self.emit(self.topics.segment_changes, key, raw, None, source)
        if to_name:
            self.emit(per_segment_topic(self.config, segment), key, raw, None, source)

    def firing(self, key: bytes, raw: bytes, trigger: str, source: int, *, to_name: bool) -> None:
        self.emit(self.topics.triggers, key, raw, None, source)
        if to_name:
            self.emit(per_trigger_topic(self.config, trigger), key, raw, None, source)

    def dead_letter(
        self, topic: str, number: int, offset: int, key: bytes | None, raw: bytes, reason: str, kind: str
    ) -> None:
        record = rejection(
            raw, reason, TopicSource(topic=topic, partition=number, offset=offset), keep_original=True
        )
        self.emit(self.topics.dead_letters, key, encode(record), number, number)
        self.metrics.dead_letters.labels(kind).inc()

    def drain(self) -> list[Output]:
        """The messages to produce for what was handled since the last call, in order."""
        out, self.pending = self.pending, []
        return out
