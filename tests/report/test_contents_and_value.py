"""What second purchasers buy, and what a cohort has been worth: a hand-made history with every
figure worked out by hand."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.lifecycle.instants import parse_rfc3339
from tests.helpers import at, cancelled, placed, run_cli, write_events


def bought(customer: str, order: str, day: float, *lines: tuple[str, str, int]) -> dict:
    """An order of (sku, category, unit price in cents) lines, one of each."""
    items = [
        {"sku": sku, "qty": 1, "unit_minor": price, "category": category} for sku, category, price in lines
    ]
    return placed(customer, order, at(day), amount=sum(price for *_, price in lines), items=items)


SHOES, SOCKS, BOOK, BOOK_2, HAT = (
    ("S1", "shoes", 5000),
    ("K1", "socks", 500),
    ("B1", "books", 2000),
    (
        "B2",
        "books",
        2000,
    ),
    ("H1", "hats", 2500),
)

# T0 is 2025-03-01T10:00Z: every customer's first order is in the cohort 2025-03
HISTORY = [
    bought("a", "a1", 0, SHOES), bought("a", "a2", 10, SOCKS, ("S2", "shoes", 4000)),
    bought("b", "b1", 1, SHOES), bought("b", "b2", 20, SOCKS),
    bought("c", "c1", 2, BOOK), bought("c", "c2", 5, BOOK_2),
    bought("d", "d1", 3, BOOK),
    bought("e", "e1", 4, SHOES), bought("e", "e2", 6, SOCKS), cancelled("e", "e2", at(6.5)),
    bought("e", "e3", 40, HAT),  # e's second counted order, 40 days after the first
]  # fmt: skip


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    directory = tmp_path_factory.mktemp("contents")
    history = write_events(directory / "history.jsonl", sorted(HISTORY, key=lambda e: e["occurred_at"]))
    kpis = directory / "kpis.json"
    ran = run_cli("report", str(history), "--until", "2025-08-01T00:00:00Z", "--kpis", str(kpis))
    assert ran.returncode == 0, ran.stderr
    return orjson.loads(kpis.read_bytes())


def test_second_orders_by_category_and_sku(figures: dict):
    contents = figures["second_order_contents"]
    # second orders: a {socks, shoes}, b {socks}, c {books}, e {hats} (e2 cancelled)
    assert contents["second_orders"] == 4
    assert [(c["category"], c["second_orders"], c["share"]) for c in contents["categories"]] == [
        ("socks", 2, 0.5),
        ("books", 1, 0.25),
        ("hats", 1, 0.25),
        ("shoes", 1, 0.25),
    ]
    assert [(s["sku"], s["second_orders"]) for s in contents["skus"]] == [
        ("K1", 2),
        ("B2", 1),
        ("H1", 1),
        ("S2", 1),
    ]


def test_second_order_categories_by_the_first_orders_category_with_their_lift(figures: dict):
    table = figures["second_order_contents"]["from_first_category"]
    assert table["columns"] == ["socks", "books", "hats", "shoes"]
    shoes, books = table["rows"]
    # first orders in shoes: a, b, e; their second orders: socks 2 of 3 (lift 2/3 over 1/2),
    # books none, hats 1 of 3 (over 1/4), shoes 1 of 3 (over 1/4)
    assert (shoes["first_category"], shoes["second_orders"], shoes["few"]) == ("shoes", 3, True)
    assert [cell["second_orders"] for cell in shoes["cells"]] == [2, 0, 1, 1]
    assert [cell["lift"] for cell in shoes["cells"]] == pytest.approx([4 / 3, 0, 4 / 3, 4 / 3])
    assert (books["first_category"], books["second_orders"]) == ("books", 1)
    assert [cell["lift"] for cell in books["cells"]] == pytest.approx([0, 4, 0, 0])


def test_value_by_cohort_where_the_whole_period_is_seen(figures: dict):
    cohort = figures["cohort_value"]["2025-03"]
    assert cohort["customers"] == 5
    # within a month of each first order: a 50 + 45, b 50 + 5, c 20 + 20, d 20, e 50 = 260;
    # within three: e's hat (25) too = 285; over 5 customers. The cohort ends 2025-04-01:
    # its 6 months are seen on 2025-10-01, after T (2025-08-01)
    assert cohort["revenue_per_customer"] == {
        "EUR": {"1": 52.0, "3": 57.0, "6": None, "12": None, "24": None}
    }


def test_the_months_are_calendar_months_clamped_to_the_months_end():
    from stream.report.cohort_value import months_after

    assert months_after(parse_rfc3339("2025-01-31T10:00:00Z"), 1) == parse_rfc3339("2025-02-28T10:00:00Z")
    assert months_after(parse_rfc3339("2024-11-15T00:00:00.5Z"), 3) == parse_rfc3339("2025-02-15T00:00:00.5Z")


def test_nothing_to_measure_gives_empty_figures(tmp_path: Path):
    history = write_events(tmp_path / "one.jsonl", [placed("solo", "o1", at(0))])
    kpis = tmp_path / "kpis.json"
    assert run_cli("report", str(history), "--kpis", str(kpis)).returncode == 0
    figures = orjson.loads(kpis.read_bytes())
    assert figures["second_order_contents"]["second_orders"] == 0
    assert figures["second_order_contents"]["categories"] == []
    assert figures["cohort_value"]["2025-03"]["revenue_per_customer"]["EUR"]["1"] is None
