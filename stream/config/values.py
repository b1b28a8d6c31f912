"""How one setting's value is read: durations, counts, shares, ports, file paths, flags,
choices. Each parser raises ValueError with what it expected; `config` names the key."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import field
from typing import Any

from ..lifecycle.instants import DAY_US, HOUR_US, MINUTE_US, SECOND_US

_UNITS = {"ms": 1000, "s": SECOND_US, "m": MINUTE_US, "h": HOUR_US, "d": DAY_US, "w": 7 * DAY_US}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> int:
    """Microseconds of a duration such as `30d`, `12h`, `1d12h`, `500ms`."""
    compact = text.replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"expected a duration like `30d`, `12h` or `90s`, got `{text}`")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def duration(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like `30d` (a string), got `{value!r}`")
    return parse_duration(value)


def positive_int(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"expected a whole number above zero, got `{value!r}`")
    return value


def whole_number(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a whole number, 0 or more, got `{value!r}`")
    return value


def session_timeout(value: object) -> int:
    timeout = duration(value)
    # Kafka refuses sessions under 6 s (group.min.session.timeout.ms); faust refuses one longer
    # than its 90 s request timeout
    if not 6 * SECOND_US <= timeout <= 90 * SECOND_US:
        raise ValueError(f"expected a duration from 6s to 90s, got `{value}`")
    return timeout


def transaction_interval(value: object) -> int:
    interval = duration(value)
    # under 10 ms the commits alone would be the worker's work; over 10 s a read_committed
    # subscriber waits that long for every transition
    if not 10 * _UNITS["ms"] <= interval <= 10 * SECOND_US:
        raise ValueError(f"expected a duration from 10ms to 10s, got `{value}`")
    return interval


def share(value: object) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a share between 0 and 1, like 0.2, got `{value}`") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"expected a share between 0 and 1, like 0.2, got `{value!r}`")
    return float(value)


def port(value: object) -> int:
    port = positive_int(value)
    if port > 65535:
        raise ValueError(f"expected a port number up to 65535, got `{port}`")
    return port


def text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got `{value!r}`")
    return value


def existing_file(value: object) -> str:
    path = text(value)
    if not os.path.isfile(path):
        raise ValueError(f"no such file: `{path}`")
    return path


def flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ValueError(f"expected true or false, got `{value!r}`")


def choice(*allowed: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got `{value!r}`")
        return str(value)

    return parse


def setting(parse: Callable[[object], Any], default: Any) -> Any:
    return field(default=default, metadata={"parse": parse})
