"""Plots of what customers buy and what they are worth: second orders' contents, and the
value of each cohort."""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from .plots import bars, percent, svg


def second_order_contents(contents: dict[str, Any]) -> str:
    """Bars: share of second orders holding each category and SKU; then the table from the
    first order's category to the second's, each cell coloured by its lift (grey: few)."""
    if not contents["second_orders"]:
        return svg(900, 40, '<text x="0" y="20">no second orders</text>')
    rows = [
        (f"category {c['category']}", c["share"], f"{c['share']:.0%} ({c['second_orders']:,})")
        for c in contents["categories"]
    ]
    rows += [
        (f"SKU {s['sku']}", s["share"], f"{s['share']:.0%} ({s['second_orders']:,})")
        for s in contents["skus"]
    ]
    table = contents["from_first_category"]
    columns, cell, left, top = table["columns"], 90, 200, 24
    parts = [
        f'<text x="{left + i * cell}" y="16">{html.escape(c[:12])}</text>' for i, c in enumerate(columns)
    ]
    for r, row in enumerate(table["rows"]):
        y = top + r * 26
        parts.append(
            f'<text x="0" y="{y + 17}">{html.escape(row["first_category"][:22])} '
            f"({row['second_orders']:,})</text>"
        )
        for i, found in enumerate(row["cells"]):
            lift = found["lift"]
            shade = min(1.0, abs(lift - 1))
            colour = (
                "#d9d9d9"
                if row["few"]
                else (
                    f"rgb({int(255 - 200 * shade)},{int(255 - 90 * shade)},255)"
                    if lift >= 1
                    else f"rgb(255,{int(255 - 120 * shade)},{int(255 - 120 * shade)})"
                )
            )
            parts.append(
                f'<rect x="{left + i * cell}" y="{y}" width="{cell - 4}" height="22" fill="{colour}">'
                f"<title>{found['second_orders']:,} second orders, {percent(found['share'])}, "
                f"lift {lift:.2f}</title></rect>"
                f'<text x="{left + i * cell + 6}" y="{y + 16}">{lift:.2f}×</text>'
            )
    height = top + len(table["rows"]) * 26 + 4
    return bars(rows, "#756bb1", left=200) + svg(left + len(columns) * cell, height, "".join(parts))


def cohort_value_cells(cohorts: dict[str, Any]) -> str:
    """Per cohort (rows) and months after the first order (columns), net revenue per customer
    in the cohorts' most common currency; blank where the period is not yet seen."""
    currencies = Counter(c for cohort in cohorts.values() for c in cohort["revenue_per_customer"])
    if not currencies:
        return svg(900, 40, '<text x="0" y="20">no cohorts</text>')
    currency = currencies.most_common(1)[0][0]
    values = [
        v
        for cohort in cohorts.values()
        for v in cohort["revenue_per_customer"].get(currency, {}).values()
        if v is not None
    ]
    top = max(values, default=0.0) or 1.0
    cell, left, row = 90, 110, 24
    parts = [
        f'<text x="{left + i * cell}" y="14">{k} mo</text>' for i, k in enumerate(("1", "3", "6", "12", "24"))
    ]
    for r, (month, cohort) in enumerate(cohorts.items()):
        y = 20 + r * row
        parts.append(f'<text x="0" y="{y + 16}">{month} ({cohort["customers"]:,})</text>')
        for i, value in enumerate(cohort["revenue_per_customer"].get(currency, {}).values()):
            if value is None:
                continue
            shade = value / top
            parts.append(
                f'<rect x="{left + i * cell}" y="{y}" width="{cell - 4}" height="{row - 2}" '
                f'fill="rgb({int(255 - 200 * shade)},{int(255 - 110 * shade)},{int(255 - 200 * shade)})"/>'
                f'<text x="{left + i * cell + 6}" y="{y + 16}">{value:,.0f}</text>'
            )
    return svg(
        left + 5 * cell + 100,
        24 + len(cohorts) * row,
        f'<text x="{left + 5 * cell + 8}" y="14">{currency}</text>' + "".join(parts),
    )
