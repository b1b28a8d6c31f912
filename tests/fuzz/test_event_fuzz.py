"""Every reader of event bytes gives a value or a rejection with a reason, whatever the bytes.

The readers: `decode_event` (topic messages, JSONL lines, CSV and Shopify rows once made
events), the time-order head of a replayed line, the replay driver, and the live worker's
message path (decoding, routing, the rules, the stored record), which must dead-letter what
it cannot apply and never raise: a raise there stops the worker with exit 70, and the same
message would stop it again after every restart.
"""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import example, given

from stream.config import load_config
from stream.inputs.files import InputLine
from stream.inputs.messages import InvalidEvent, decode_event
from stream.inputs.time_order import line_head
from stream.lifecycle import OrderEvent
from stream.replay.driver import Replay
from stream.worker.runtime import Worker
from tests.fuzz.strategies import BEFORE_ORDERS, event_bytes, fuzz_settings, nested
from tests.helpers import NOW, T0, placed

POISON = [
    nested(2000, "object"),
    nested(100_000, "array"),
    b'{"type":"order.placed","event_id":"\xed\xa0\x80","customer_id":"c1"}',
    b'{"type":"order.placed","event_id":"e1","customer_id":"c1","occurred_at":"2025-03-01T10:00:00Z",'
    b'"order_id":"o1","total":{"amount_minor":' + b"9" * 400 + b',"currency":"EUR"}}',
]


def _decoded_or_reason(raw: bytes) -> OrderEvent | str:
    try:
        return decode_event(raw)
    except InvalidEvent as invalid:
        assert str(invalid), "a rejection says why"
        assert invalid.kind in ("not_json", "too_large", "invalid")
        return str(invalid)


@fuzz_settings
@given(event_bytes())
@example(POISON[0])
@example(POISON[1])
@example(POISON[2])
@example(POISON[3])
def test_decode_event_gives_an_event_or_a_rejection_whatever_the_bytes(raw):
    _decoded_or_reason(raw)


@pytest.mark.parametrize("raw", POISON, ids=["nested-2000", "nested-100000", "lone-surrogate", "400-digits"])
def test_the_poison_messages_of_issue_31_are_rejections_with_reasons(raw):
    assert isinstance(_decoded_or_reason(raw), str)


@fuzz_settings
@given(event_bytes())
def test_the_time_order_head_of_a_line_never_raises(raw):
    instant, customer_id = line_head(InputLine(1, raw))
    assert instant is None or isinstance(instant, int)
    assert customer_id is None or isinstance(customer_id, str)


_replay = Replay(
    load_config(None, environ={}, overrides={"kafka": {"partitions": 2}, **BEFORE_ORDERS}), now_us=lambda: NOW
)


@fuzz_settings
@given(event_bytes())
def test_replay_applies_or_rejects_every_line(raw):
    try:
        _replay.feed(raw)
    except InvalidEvent as invalid:
        assert str(invalid)


class _WorkerUnderFire:
    """One worker kept across examples, so that hostile events meet customers built by
    earlier ones (a cancellation of a huge order, a refund in another currency …)."""

    def __init__(self, guarantee: str = "at_least_once") -> None:
        overrides = {
            "kafka": {"partitions": 1},
            "worker": {"processing_guarantee": guarantee},
            **BEFORE_ORDERS,
        }
        config = load_config(None, environ={}, overrides=overrides)
        self.worker = Worker(config, {}, {}, {}, now_us=lambda: NOW, owned_partitions=lambda: [0])
        self.offsets = itertools.count()

    def handle(self, raw: bytes) -> list[dict]:
        """The dead letters the message gave; asserts it was processed (no re-read asked)."""
        worker = self.worker
        assert worker.on_message(worker.topics.orders, 0, next(self.offsets), b"c1", raw) is None
        outputs = worker.drain()
        return [orjson.loads(o.value) for o in outputs if o.topic == worker.topics.dead_letters]


_under_fire = {guarantee: _WorkerUnderFire(guarantee) for guarantee in ("at_least_once", "exactly_once")}


@pytest.mark.parametrize("guarantee", sorted(_under_fire))
@fuzz_settings
@given(raw=event_bytes())
@example(raw=POISON[0])
@example(raw=POISON[2])
@example(raw=POISON[3])
def test_the_worker_dead_letters_what_it_cannot_apply_and_never_raises(guarantee, raw):
    fire = _under_fire[guarantee]
    dead_letters = fire.handle(raw)
    if isinstance(_decoded_or_reason(raw), str):
        assert len(dead_letters) == 1
    for letter in dead_letters:
        assert letter["reason"]
        assert letter["source"]["topic"] == fire.worker.topics.orders


def test_a_valid_order_after_poison_messages_is_applied():
    fire = _WorkerUnderFire()
    for raw in POISON:
        assert len(fire.handle(raw)) == 1
    assert fire.handle(orjson.dumps(placed("c1", "o1", T0))) == []
    assert fire.worker.partitions[0].core.clock_us == T0
