"""A CSV of sign-ups (`--format signups`): each row a customer.signed_up event, or a
rejection that names the file's column."""

from __future__ import annotations

import io

import orjson
import pytest

from stream.inputs.files import CsvLayout, InputFormatError, signup_lines
from stream.inputs.messages import decode_event
from stream.lifecycle.events import CustomerSignedUp


def read(text: str, layout: CsvLayout | None = None) -> list:
    return list(signup_lines(io.BytesIO(text.encode("utf-8")), layout))


def test_rows_become_sign_ups_with_their_contact_data_and_a_stable_id():
    text = (
        "customer_id,occurred_at,email,accepts_marketing,source\n"
        "c1,2025-01-10T09:14:55Z,c1@example.com,yes,popup\n"
        "c2,2025-01-11T10:00:00+01:00,,,\n"
    )
    first, second = read(text)
    event = decode_event(first.raw)
    assert isinstance(event, CustomerSignedUp)
    assert (event.customer_id, event.email, event.accepts_marketing, event.source) == (
        "c1",
        "c1@example.com",
        True,
        "popup",
    )
    bare = decode_event(second.raw)
    assert (bare.email, bare.accepts_marketing, bare.source) == (None, None, None)
    assert read(text)[0].raw == first.raw  # the same export twice: the same event ids


def test_columns_are_renamed_and_local_times_take_the_given_zone():
    text = "Kunde;Datum;Newsletter\nk1;2025-01-10 09:14:55;0\n"
    layout = CsvLayout(
        {"customer_id": "Kunde", "occurred_at": "Datum", "accepts_marketing": "Newsletter"},
        delimiter=";",
        timezone="Europe/Berlin",
    )
    [line] = read(text, layout)
    event = orjson.loads(line.raw)
    assert event["occurred_at"] == "2025-01-10T09:14:55+01:00"
    assert event["accepts_marketing"] is False


def test_a_bad_row_is_a_rejection_naming_the_column_and_the_rest_is_read():
    text = (
        "customer_id,occurred_at,accepts_marketing\n"
        "c1,yesterday,\n"
        "c2,2025-01-10T09:00:00Z,maybe\n"
        "c3,2025-01-10T09:00:00Z,no\n"
    )
    bad_time, bad_consent, good = read(text)
    assert bad_time.error is not None and "`occurred_at`" in bad_time.error
    assert bad_consent.error is not None and "`accepts_marketing`" in bad_consent.error
    assert good.error is None


def test_a_header_without_the_required_columns_stops_with_what_was_found():
    with pytest.raises(InputFormatError, match="occurred_at"):
        read("customer_id,email\nc1,a@example.com\n")
