"""The committed JSON Schemas are exactly what the message types generate, and they judge real
input the way the decoder does."""

import orjson
import pytest
from jsonschema import Draft202012Validator

from stream.inputs.messages import InvalidEvent, decode_event
from stream.inputs.schemas import drifted, load_schema, schema_dir
from tests.helpers import at, cancelled, erased, placed, refunded


def test_committed_schemas_match_the_types():
    assert drifted(schema_dir()) == []


GOOD = [
    placed("c", "o", at(0), items=[{"sku": "S", "qty": 1, "unit_minor": 5}]),
    cancelled("c", "o", at(1)),
    refunded("c", "o", at(2), 5),
    erased("c", at(3)),
]
BAD = [
    {"type": "order.placed", "event_id": "e", "customer_id": "c", "occurred_at": "2025-01-01T00:00:00Z"},
    dict(placed("c", "o", at(0)), total={"amount_minor": -1, "currency": "EUR"}),
    dict(placed("c", "o", at(0)), total={"amount_minor": 1, "currency": "euro"}),
    dict(placed("c", "o", at(0)), customer_id=""),
    dict(cancelled("c", "o", at(0)), type="order.lost"),
    {"type": "customer.erased", "event_id": "e", "customer_id": "c"},
]


@pytest.mark.parametrize("event", GOOD)
def test_valid_events_pass_schema_and_decoder(event):
    Draft202012Validator(load_schema("order-event")).validate(event)
    decode_event(orjson.dumps(event))


@pytest.mark.parametrize("event", BAD)
def test_invalid_events_fail_schema_and_decoder(event):
    assert not Draft202012Validator(load_schema("order-event")).is_valid(event)
    with pytest.raises(InvalidEvent):
        decode_event(orjson.dumps(event))
