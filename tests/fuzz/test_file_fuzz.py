"""Every reader of files gives lines that are events or rejections with reasons, whatever the
bytes: CSV and Shopify exports in any encoding, cut, flipped or holding hostile values.
Only a header that cannot be read stops a command, with a one-line error."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from stream.inputs.files import CsvLayout, InputFormatError
from stream.inputs.messages import InvalidEvent, decode_event
from stream.inputs.sources import format_lines
from tests.fuzz.strategies import (
    ENCODINGS,
    csv_files,
    event_bytes,
    fuzz_settings,
    shopify_files,
    signup_files,
)

SHOPIFY_EXAMPLE = (Path(__file__).parents[1] / "data" / "shopify-orders.csv").read_bytes()


def _read_all(raw: bytes, input_format: str, layout: CsvLayout) -> int:
    """How many lines came out; asserts each is an event or a rejection with a reason."""
    lines = 0
    try:
        for line in format_lines(io.BytesIO(raw), input_format, layout):
            lines += 1
            assert isinstance(line.raw, bytes)
            if line.error is not None:
                assert line.error.startswith("line ")
                continue
            try:
                decode_event(line.raw)
            except InvalidEvent as invalid:
                assert str(invalid)
    except InputFormatError as error:
        assert str(error)
        str(error).encode("utf-8")  # printable: no undecodable byte carried into the message
    return lines


@fuzz_settings
@given(csv_files(), st.sampled_from(ENCODINGS), st.sampled_from([None, "Europe/Berlin"]), st.booleans())
def test_a_csv_export_is_read_as_events_and_rejections_whatever_its_bytes(raw, encoding, zone, comma):
    _read_all(raw, "csv", CsvLayout(encoding=encoding, timezone=zone, decimal_comma=comma))


@fuzz_settings
@given(signup_files(), st.sampled_from(ENCODINGS), st.sampled_from([None, "Europe/Berlin"]))
def test_a_csv_of_sign_ups_is_read_as_events_and_rejections_whatever_its_bytes(raw, encoding, zone):
    _read_all(raw, "signups", CsvLayout(encoding=encoding, timezone=zone))


@fuzz_settings
@given(shopify_files(SHOPIFY_EXAMPLE), st.sampled_from(ENCODINGS))
def test_a_shopify_export_is_read_as_events_and_rejections_whatever_its_bytes(raw, encoding):
    _read_all(raw, "shopify", CsvLayout(encoding=encoding))


@fuzz_settings
@given(st.lists(event_bytes(), max_size=5))
def test_a_jsonl_file_is_read_line_by_line_whatever_its_bytes(lines):
    raw = b"\n".join(lines)
    assert _read_all(raw, "jsonl", CsvLayout()) <= raw.count(b"\n") + 1


@fuzz_settings
@given(st.binary(max_size=300), st.sampled_from(["csv", "shopify", "signups"]), st.sampled_from(ENCODINGS))
def test_any_bytes_as_a_csv_file_are_lines_or_a_header_error(raw, input_format, encoding):
    _read_all(raw, input_format, CsvLayout(encoding=encoding))
