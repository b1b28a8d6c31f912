"""Instants as integer epoch microseconds (UTC), and their RFC 3339 form.

State never holds datetimes or float seconds: integers compare exactly, which is what
makes "boundaries are exact instants" hold to the microsecond.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The latest instant a deadline is set for: "not in any lifetime", still a datetime (whose
# range ends in 9999) when written out
LATEST_US = (datetime(9000, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


_ONE_US = timedelta(microseconds=1)


def to_us(instant: datetime) -> int:
    """Epoch microseconds of an aware datetime."""
    if instant.tzinfo is None:
        raise ValueError(f"instant {instant.isoformat()} has no time zone")
    return (instant - _EPOCH) // _ONE_US


def from_us(instant_us: int) -> datetime:
    """Aware UTC datetime of epoch microseconds."""
    return _EPOCH + timedelta(0, 0, instant_us)


def format_rfc3339(instant_us: int) -> str:
    """RFC 3339 in UTC with a `Z`, microseconds only when not zero."""
    text = from_us(instant_us).isoformat()
    return text[:-6] + "Z"


def iso_week(instant: datetime) -> str:
    """The ISO week an instant falls in, as the report and what-if label weeks: `2026-W05`."""
    year, week, _ = instant.isocalendar()
    return f"{year}-W{week:02d}"


def parse_rfc3339(text: str) -> int:
    """Epoch microseconds of an RFC 3339 timestamp that carries a zone."""
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from None
    if instant.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone (add Z or an offset)")
    return to_us(instant)
