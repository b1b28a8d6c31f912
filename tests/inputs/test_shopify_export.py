"""Shopify's orders export (one row per line item) replayed: placements, cancellations,
voided payments and refunds become the matching events."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import jsonl, run_replay

EXPORT = Path(__file__).parents[1] / "data" / "shopify-orders.csv"


def test_a_shopify_export_replays_to_the_states_its_orders_give(tmp_path):
    result = run_replay(
        str(EXPORT),
        "--format",
        "shopify",
        "--until",
        "2025-03-31T00:00:00Z",
        "--states",
        str(tmp_path / "s.jsonl"),
        "--transitions",
        str(tmp_path / "t.jsonl"),
        "--rejects",
        str(tmp_path / "r.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    assert jsonl(tmp_path / "r.jsonl") == []
    states = {s["customer_id"]: s for s in jsonl(tmp_path / "s.jsonl")}
    # ann: two orders (one of two line items), e-mail case folded
    assert (states["ann@example.com"]["state"], states["ann@example.com"]["order_count"]) == ("repeat", 2)
    assert states["ann@example.com"]["spend"] == {"EUR": 5890 + 4000}
    # bob: one order, the other refunded in full; cat: voided; dan: cancelled; eve: partial refund
    assert (states["bob@example.com"]["order_count"], states["bob@example.com"]["spend"]) == (
        1,
        {"EUR": 3000},
    )
    assert states["cat@example.com"]["state"] == "prospect"
    assert states["dan@example.com"]["state"] == "prospect"
    assert (states["eve@example.com"]["order_count"], states["eve@example.com"]["spend"]) == (
        1,
        {"EUR": 3500},
    )
    first = next(t for t in jsonl(tmp_path / "t.jsonl") if t["customer_id"] == "ann@example.com")
    order = first["customer"]["first_order"]
    assert [(i["sku"], i["qty"], i["unit_minor"]) for i in order["items"]] == [
        ("SHIRT-L", 2, 2200),
        ("TOTE", 1, 1000),
    ]
    assert (order["coupon"], order["payment_method"], order["channel"]) == (
        "WELCOME10",
        "Shopify Payments",
        "web",
    )
    assert first["occurred_at"] == "2025-01-10T08:14:55Z"


def test_a_file_that_is_not_a_shopify_export_stops_with_the_missing_columns(tmp_path):
    other = tmp_path / "orders.csv"
    other.write_text("customer_id;order_id;occurred_at\nann;1;2025-01-01T00:00:00Z\n")
    result = run_replay(str(other), "--format", "shopify")
    assert result.returncode == 2
    message = result.stderr.decode().strip()
    assert message.startswith(f"error: input {other}: not a Shopify orders export: the header lacks")
    assert "Name, Email, Created at, Currency, Total" in message


def test_a_bad_row_is_rejected_naming_its_line_and_column_and_the_rest_goes_on(tmp_path):
    lines = EXPORT.read_text().splitlines()
    lines[3] = lines[3].replace(",30.00,,0.00,,2025-01-12", ",thirty,,0.00,,2025-01-12")
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n")
    result = run_replay(str(broken), "--format", "shopify", "--rejects", str(tmp_path / "r.jsonl"))
    assert result.returncode == 0
    [reject] = jsonl(tmp_path / "r.jsonl")
    assert reject["reason"] == "line 4: column `Total`: amount `thirty` is not a decimal number"
    assert reject["source"]["line"] == 4 and reject["raw_text"].startswith("#1002,bob@example.com,paid")
    assert "rejected 1" in result.stderr.decode()


def test_email_and_consent_reach_the_states_unless_no_pii(tmp_path):
    for extra, expected in (((), ("ann@example.com", True)), (("--no-pii",), (None, None))):
        states = tmp_path / "s.jsonl"
        result = run_replay(str(EXPORT), "--format", "shopify", "--states", str(states), *extra)
        assert result.returncode == 0, result.stderr
        ann = next(s for s in jsonl(states) if s["customer_id"] == "ann@example.com")
        assert (ann["email"], ann["accepts_marketing"]) == expected
