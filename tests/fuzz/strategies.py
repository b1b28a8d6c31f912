"""What hostile input looks like: raw bytes, and valid events, rows and exports mutated.

Shared by the fuzz tests (`tests/fuzz/`, a bounded number of examples in `make test`) and
`make fuzz` (the same tests, `LIFECYCLE_FUZZ_EXAMPLES` examples each).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.helpers import NOW, cancelled, engaged, erased, placed, refunded, signed_up

# segments and triggers that read sign-ups and engagement, so that the fuzzed paths run them
BEFORE_ORDERS: dict[str, Any] = {
    "segments": {"leads": {"state": ["prospect"], "engaged": ["added_to_cart"], "engaged_within": "30d"}},
    "triggers": {
        "welcome": {"on": "signed_up", "only_state": ["prospect"], "once": True},
        "cart": {"on": "engaged:added_to_cart", "after": "1h", "unless": ["order", "signed_up"]},
    },
}

EXAMPLES = int(os.environ.get("LIFECYCLE_FUZZ_EXAMPLES", "150"))
# every fuzz test runs under these: no deadline (a 1 MB input takes its time) and no
# health check on slow generation (deep nesting is slow to build, and meant)
fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("LIFECYCLE_FUZZ_RANDOM") is None,
)

# bytes producers get wrong: a lone surrogate (ED A0 80), overlong forms, stray continuation
# and lead bytes, Windows-1252 text, NUL, a BOM, CR without LF
AWKWARD_BYTES = [
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\x80",
    b"\xbf",
    b"\xc3",
    b"\xf4\x90\x80\x80",
    b"\xff\xfe",
    b"\xe9",
    b"\x96",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\r",
    b"\\ud800",
    b"\\u0000",
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "EUR",
            "eur",
            "2025-03-01T10:00:00Z",
            "2025-02-30T10:00:00Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "2025-03-01T10:00:00",
            "x" * 300,
            "order.placed",
            "customer.erased",
        ]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int, kind: str) -> bytes:
    """A JSON value `depth` arrays or objects deep: what overflows a recursive decoder."""
    if kind == "array":
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    customer = draw(st.sampled_from(["c1", "c2", "guest", "c\u00e9", "c\U0001f600"]))
    order = draw(st.sampled_from(["o1", "o2", "o3"]))
    when = NOW - draw(st.integers(min_value=0, max_value=3 * 365 * 86_400_000_000))
    amount = draw(st.integers(min_value=0, max_value=10**6))
    kind = draw(
        st.sampled_from(["placed", "placed", "cancelled", "refunded", "erased", "signed_up", "engaged"])
    )
    # drawn, not the helpers' counter: an example must be the same bytes when replayed
    event_id = draw(st.sampled_from(["e1", "e2", "e3", "e4"]))
    if kind == "placed":
        extra: dict[str, Any] = {}
        if draw(st.booleans()):
            extra["items"] = [{"sku": "s1", "qty": 2, "unit_minor": amount // 2, "category": "shoes"}]
        if draw(st.booleans()):
            extra["email"] = "a@example.com"
            extra["accepts_marketing"] = draw(st.booleans())
        return placed(customer, order, when, amount, event_id=event_id, **extra)
    if kind == "cancelled":
        return cancelled(customer, order, when, event_id=event_id)
    if kind == "refunded":
        return refunded(customer, order, when, amount, event_id=event_id)
    if kind == "signed_up":
        contact = {"email": "a@example.com", "accepts_marketing": draw(st.booleans()), "source": "popup"}
        return signed_up(customer, when, event_id=event_id, **(contact if draw(st.booleans()) else {}))
    if kind == "engaged":
        what = draw(st.sampled_from(["added_to_cart", "product_viewed", "email_clicked"]))
        items = [{"sku": "s1", "qty": 1, "unit_minor": amount, "category": "shoes"}]
        cart = {"items": items, "cart_id": "k1"} if draw(st.booleans()) else {}
        return engaged(customer, what, when, event_id=event_id, **cart)
    return erased(customer, when, event_id=event_id)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any, remove: bool = False) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    if rest:
        copy[head] = _replace(copy[head], rest, new, remove)
    elif remove:
        del copy[head]
    else:
        copy[head] = new
    return copy


@st.composite
def mutated_values(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """`base` with one to three fields removed, retyped, emptied, made huge or added."""
    value = draw(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(value)
        action = draw(st.sampled_from(["remove", "retype", "empty", "huge", "add", "deep"]))
        if action == "add" or not paths:
            if isinstance(value, dict):
                value = {**value, draw(st.text(max_size=10)): draw(json_values)}
            continue
        path = draw(st.sampled_from(paths))
        if action == "remove":
            value = _replace(value, path, None, remove=True)
        elif action == "retype":
            value = _replace(value, path, draw(json_values))
        elif action == "empty":
            value = _replace(value, path, draw(st.sampled_from(["", [], {}, 0, None])))
        elif action == "huge":
            huge = draw(
                st.sampled_from(
                    ["x" * 100_000, 10**400, -(10**400), 2**64, 2**63, -(2**63) - 1, 1e308, [1] * 10_000]
                )
            )
            value = _replace(value, path, huge)
        else:
            value = _replace(value, path, f"__deep_{draw(st.integers(100, 3000))}__")
    return value


_DEEP = re.compile(rb'"__deep_(\d+)__"')


def _dumps(value: Any) -> bytes:
    """JSON of `value`, ints beyond 64 bits included (orjson refuses them), a `__deep_N__`
    string replaced by a value N objects deep."""
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return _DEEP.sub(lambda match: nested(int(match[1]), "object"), raw)


@st.composite
def mutated_bytes(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """`base` with bytes flipped, awkward bytes inserted, cut short or repeated."""
    raw = bytearray(draw(base))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(raw)))
        action = draw(st.sampled_from(["flip", "insert", "truncate", "repeat", "delete"]))
        if action == "flip" and raw:
            index = min(position, len(raw) - 1)
            raw[index] = draw(st.integers(min_value=0, max_value=255))
        elif action == "insert":
            raw[position:position] = draw(st.sampled_from(AWKWARD_BYTES) | st.binary(min_size=1, max_size=4))
        elif action == "truncate":
            del raw[position:]
        elif action == "repeat":
            raw[position:position] = raw[position : position + draw(st.integers(1, 40))]
        elif raw:
            del raw[position : position + draw(st.integers(1, 8))]
    return bytes(raw)


def event_bytes() -> st.SearchStrategy[bytes]:
    """Raw bytes, valid events, mutated valid events (as values and as bytes), deep nesting."""
    valid = valid_events().map(orjson.dumps)
    return st.one_of(
        st.binary(max_size=200),
        valid,
        mutated_values(valid_events()).map(_dumps),
        mutated_bytes(valid),
        mutated_bytes(mutated_values(valid_events()).map(_dumps)),
        st.builds(nested, st.integers(min_value=1, max_value=20_000), st.sampled_from(["array", "object"])),
    )


ENCODINGS = ["utf-8", "cp1252", "latin-1", "utf-16"]
CSV_HEADER = "customer_id,order_id,occurred_at,amount,currency,type,event_id,store_id,channel,coupon"


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A flat order export: valid rows, rows with fields replaced, the bytes mutated, and
    the whole in one of the encodings shops save in."""
    rows = []
    for number in range(draw(st.integers(min_value=0, max_value=6))):
        values = [
            draw(st.sampled_from(["c1", "Zoë", "guest"])),
            f"o{number}",
            draw(
                st.sampled_from(["2025-03-01T10:00:00Z", "2025-03-01 10:00:00", "2025-03-01T10:00:00+01:00"])
            ),
            draw(st.sampled_from(["12.50", "0", "1.234,50", "-3", "1e3"])),
            draw(st.sampled_from(["EUR", "eur", "JPY"])),
            draw(st.sampled_from(["", "order.placed", "order.cancelled", "order.refunded"])),
            "",
            "",
            "web",
            "",
        ]
        if draw(st.booleans()):
            values[draw(st.integers(0, len(values) - 1))] = draw(_field_texts)
        rows.append(",".join(values))
    text = "\r\n".join([CSV_HEADER, *rows])
    raw = text.encode(draw(st.sampled_from(ENCODINGS)), "replace")
    return draw(mutated_bytes(st.just(raw))) if draw(st.booleans()) else raw


SIGNUP_HEADER = "customer_id,occurred_at,email,accepts_marketing,source,event_id"


@st.composite
def signup_files(draw: st.DrawFn) -> bytes:
    """A CSV of sign-ups: valid rows, rows with fields replaced, the bytes mutated, in one
    of the encodings shops save in."""
    rows = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        values = [
            draw(st.sampled_from(["c1", "Zoë", "a@example.com"])),
            draw(st.sampled_from(["2025-03-01T10:00:00Z", "2025-03-01 10:00:00", "01/03/2025"])),
            draw(st.sampled_from(["", "a@example.com", "x" * 400])),
            draw(st.sampled_from(["", "yes", "FALSE", "1", "ja"])),
            draw(st.sampled_from(["", "popup", "newsletter"])),
            draw(st.sampled_from(["", "s1"])),
        ]
        if draw(st.booleans()):
            values[draw(st.integers(0, len(values) - 1))] = draw(_field_texts)
        rows.append(",".join(values))
    raw = "\r\n".join([SIGNUP_HEADER, *rows]).encode(draw(st.sampled_from(ENCODINGS)), "replace")
    return draw(mutated_bytes(st.just(raw))) if draw(st.booleans()) else raw


_field_texts = st.one_of(
    st.text(max_size=30),
    json_scalars.map(str),
    st.sampled_from(
        ['"', '"unclosed', 'a"b', "\n", "9" * 400, "1e999999999", "Infinity", "NaN", "x" * 200_000]
    ),
)


@st.composite
def shopify_files(draw: st.DrawFn, example: bytes) -> bytes:
    """A real Shopify export with cells replaced by hostile text and its bytes mutated, in
    one of the encodings shops save in."""
    lines = example.decode("utf-8").splitlines()
    header, rows = lines[0], [line.split(",") for line in lines[1:]]
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        row = draw(st.sampled_from(rows))
        row[draw(st.integers(0, len(row) - 1))] = draw(_field_texts).replace(",", ";")
    text = "\n".join([header, *(",".join(row) for row in rows)])
    raw = text.encode(draw(st.sampled_from(ENCODINGS)), "replace")
    return draw(mutated_bytes(st.just(raw))) if draw(st.booleans()) else raw
