"""The edge: order events decoded from bytes, and the other messages the engine writes.

Transitions are defined in the core (`stream.lifecycle.transitions`); customer-state records
and rejections are views for the outside world and live here. `schemas/v1/` is generated
from these types (`lifecycle schemas`), and a test keeps the files and the types identical.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

import msgspec

from ..lifecycle import CustomerState, OrderEvent, State
from ..lifecycle.customer import Scorer
from ..lifecycle.instants import from_us

MAX_EVENT_BYTES = 1024 * 1024
RAW_TEXT_LIMIT = 2048
# A dead letter must itself fit in a Kafka message (1 MiB by default on most clusters),
# so the original bytes it carries stop here; base64 makes them a third larger.
RAW_ORIGINAL_LIMIT = 512 * 1024


class InvalidEvent(ValueError):
    """Input that is not a valid order event; the message is the reason, `kind` its class
    (a metric label: not_json, too_large, invalid)."""

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.kind = kind


_event_decoder = msgspec.json.Decoder(OrderEvent)
encode = msgspec.json.Encoder().encode


def decode_event(raw: bytes) -> OrderEvent:
    """Decode and validate one order event, or raise InvalidEvent with the reason; whatever
    the bytes, nothing else is raised (a fuzz test holds it to that)."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event of {len(raw)} bytes is over the {MAX_EVENT_BYTES}-byte limit", "too_large")
    try:
        event: OrderEvent = _event_decoder.decode(raw)
    except msgspec.ValidationError as error:
        raise InvalidEvent(f"invalid order event: {error}") from None
    except Exception as error:  # any failure to decode bytes is the input's
        raise undecodable(error) from None
    return event


def undecodable(error: Exception) -> InvalidEvent:
    """The rejection of bytes a JSON decoder failed on, with a reason a producer can act on.

    msgspec raises more than DecodeError on hostile bytes: RecursionError on deep nesting,
    UnicodeDecodeError on invalid UTF-8 inside a string (a lone surrogate some producers
    write); a worker that let those through would die on the message, and again after every
    restart.
    """
    if isinstance(error, RecursionError):
        return InvalidEvent("not JSON this engine reads: nested too deeply", "not_json")
    if isinstance(error, UnicodeDecodeError):
        bad = error.object[error.start : error.end].hex(" ").upper()
        return InvalidEvent(f"not UTF-8: bytes {bad} inside a string are not valid UTF-8", "not_json")
    if isinstance(error, msgspec.DecodeError):
        return InvalidEvent(f"not JSON: {error}", "not_json")
    return InvalidEvent(f"not JSON this engine reads: {type(error).__name__}: {error}", "not_json")


class CustomerRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A customer's latest state, as published on the compacted state topic."""

    customer_id: str
    state: State
    state_since: datetime
    order_count: int
    first_order_at: datetime | None
    last_order_at: datetime | None
    seq: int
    spend: dict[str, int]
    store_id: str | None
    next_deadline_at: datetime | None
    segments: list[str] = msgspec.field(default_factory=list)  # sorted names
    segment_class: str | None = msgspec.field(default=None, name="class")
    email: str | None = None
    accepts_marketing: bool | None = None
    # the customer-base model's scores at `scores_at` (the partition clock when the record
    # was written), with `[model] path` set
    scores_at: datetime | None = None
    p_alive: float | None = None
    expected_orders_365d: float | None = None
    expected_value_365d: float | None = None
    schema_version: Literal["v1"] = "v1"


def customer_record(
    customer: CustomerState, at_us: int | None = None, scorer: Scorer | None = None
) -> CustomerRecord:
    """The customer's state record; with a `scorer`, their model scores at `at_us` (the
    partition clock when the record is written)."""

    def instant(value: int | None) -> datetime | None:
        return from_us(value) if value is not None else None

    scores = scorer(customer, at_us) if scorer is not None and at_us is not None else None

    return CustomerRecord(
        customer_id=customer.customer_id,
        state=customer.state,
        state_since=from_us(customer.state_since),
        order_count=customer.order_count,
        first_order_at=instant(customer.first_order_at),
        last_order_at=instant(customer.last_order_at),
        seq=customer.seq,
        spend=dict(customer.spend),
        store_id=customer.store_id,
        next_deadline_at=instant(customer.deadline),
        segments=list(customer.segments),
        segment_class=customer.segment_class,
        email=customer.email,
        accepts_marketing=customer.accepts_marketing,
        scores_at=None if scores is None or at_us is None else from_us(at_us),
        p_alive=None if scores is None else scores.p_alive,
        expected_orders_365d=None if scores is None else scores.expected_orders_365d,
        expected_value_365d=None if scores is None else scores.expected_value_365d,
    )


class FileSource(msgspec.Struct, frozen=True, tag="file"):
    path: str
    line: int


class TopicSource(msgspec.Struct, frozen=True, tag="topic"):
    topic: str
    partition: int
    offset: int


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """Input that was not applied: why, where it came from, and what it was."""

    reason: str
    source: FileSource | TopicSource
    raw_text: str
    raw_truncated: bool
    raw_size: int
    raw_base64: str | None = None
    raw_base64_truncated: bool = False
    schema_version: Literal["v1"] = "v1"


def rejection(
    raw: bytes, reason: str, source: FileSource | TopicSource, *, keep_original: bool = False
) -> Rejection:
    """A rejection record; `keep_original` carries the exact bytes (dead letters do), up to
    RAW_ORIGINAL_LIMIT."""
    text = raw[:RAW_TEXT_LIMIT].decode("utf-8", errors="replace")
    return Rejection(
        reason=reason,
        source=source,
        raw_text=text,
        raw_truncated=len(raw) > RAW_TEXT_LIMIT,
        raw_size=len(raw),
        raw_base64=base64.b64encode(raw[:RAW_ORIGINAL_LIMIT]).decode() if keep_original else None,
        raw_base64_truncated=keep_original and len(raw) > RAW_ORIGINAL_LIMIT,
    )


class Tick(msgspec.Struct, frozen=True, gc=False):
    """Wall-clock time entering a partition as a message, so deadlines fire with no events."""

    at: datetime
    schema_version: Literal["v1"] = "v1"


_tick_decoder = msgspec.json.Decoder(Tick)


def decode_tick(raw: bytes) -> Tick:
    try:
        return _tick_decoder.decode(raw)
    except msgspec.ValidationError as error:
        raise InvalidEvent(f"invalid tick: {error}") from None
    except Exception as error:  # see `undecodable`
        raise undecodable(error) from None
