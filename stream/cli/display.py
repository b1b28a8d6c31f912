"""One readable line per transition or segment change, for people watching a terminal
(`lifecycle tail`, the demo).

python -m stream.display < transitions.jsonl
"""

from __future__ import annotations

import sys
from typing import Any

import orjson


def transition_line(transition: dict[str, Any]) -> str:
    customer = transition.get("customer") or {}
    spend = ", ".join(f"{amount / 100:.2f} {cur}" for cur, amount in (customer.get("spend") or {}).items())
    flag = " (replayed)" if transition.get("replayed") else ""
    return (
        f"{transition['occurred_at']:<27} {transition['customer_id']:>16}  "
        f"{transition['transition']:<22} {transition['from_state']:>9} -> {transition['to_state']:<9} "
        f"orders={customer.get('order_count', 0)} spend={spend or '0'}{flag}"
    )


def segment_change_line(change: dict[str, Any]) -> str:
    flag = " (replayed)" if change.get("replayed") else ""
    if change["change"] == "class_changed":
        direction = "up" if change.get("moved_up") else "down"
        what = f"class {change.get('from_class') or '-'} -> {change.get('to_class') or '-'} ({direction})"
    else:
        what = change["segment"]
    return f"{change['occurred_at']:<27} {change['customer_id']:>16}  {change['change']:<22} {what}{flag}"


def firing_line(firing: dict[str, Any]) -> str:
    flag = " (replayed)" if firing.get("replayed") else ""
    held = any(e.get("group") == "holdout" for e in firing.get("experiments") or ())
    cart = f" cart={firing['cart_id']}" if firing.get("cart_id") else ""
    items = ", ".join(i["sku"] for i in firing.get("items") or ())
    what = f"{firing['trigger']}{cart}" + (f" items={items}" if items else "")
    return (
        f"{firing['occurred_at']:<27} {firing['customer_id']:>16}  {'trigger_fired':<22} {what}"
        f"{' (held out)' if held else ''}{flag}"
    )


def change_line(message: dict[str, Any]) -> str:
    """A transition's, a segment change's or a trigger firing's line, whichever `message` is."""
    if "change" in message:
        return segment_change_line(message)
    return firing_line(message) if "trigger" in message else transition_line(message)


def main() -> None:
    try:
        for line in sys.stdin.buffer:
            print(change_line(orjson.loads(line)), flush=True)
    except BrokenPipeError:
        pass


if __name__ == "__main__":
    main()
