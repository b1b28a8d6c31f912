"""The report's plots, drawn as inline SVG: bars, cells and lines.

No plotting library: these are a few hundred lines of SVG, and the page then needs nothing
(no script, no CDN, no font) to open anywhere, mail included.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..lifecycle import State

STATE_ORDER = [State.PROSPECT, State.ONE_TIMER, State.REPEAT, State.AT_RISK, State.INACTIVE, State.CHURNED]
COLOURS = {
    State.PROSPECT: "#c7c7c7",
    State.ONE_TIMER: "#6baed6",
    State.REPEAT: "#31a354",
    State.AT_RISK: "#fd8d3c",
    State.INACTIVE: "#9e9ac8",
    State.CHURNED: "#636363",
}
CANDIDATE_WINDOWS = (14, 30, 45, 60, 90)


def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def svg(width: int, height: int, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">{body}</svg>'
    )


def stacked_bars(months: list[str], states_by_month: list[Counter[State]]) -> str:
    width, height, left, bottom = 900, 260, 40, 40
    if not months:
        return svg(width, 40, '<text x="0" y="20">no customers</text>')
    top = max(sum(c.values()) for c in states_by_month) or 1
    step = (width - left) / len(months)
    parts = []
    for i, (month, counts) in enumerate(zip(months, states_by_month, strict=True)):
        y: float = height - bottom
        for state in STATE_ORDER:
            h = counts[state] / top * (height - bottom - 10)
            if h:
                y -= h
                parts.append(
                    f'<rect x="{left + i * step:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                    f'height="{h:.1f}" fill="{COLOURS[state]}">'
                    f"<title>{month} {state.value}: {counts[state]}</title></rect>"
                )
        if len(months) <= 24 or i % 3 == 0:
            parts.append(
                f'<text x="{left + i * step:.1f}" y="{height - bottom + 14}" '
                f'transform="rotate(45 {left + i * step:.1f},{height - bottom + 14})">{month}</text>'
            )
    parts.append(f'<text x="0" y="12">{top:,}</text>')
    legend = "".join(
        f'<rect x="{left + j * 110}" y="0" width="10" height="10" fill="{COLOURS[s]}"/>'
        f'<text x="{left + j * 110 + 14}" y="9">{s.value}</text>'
        for j, s in enumerate(STATE_ORDER)
    )
    return svg(width, 16, legend) + svg(width, height + 20, "".join(parts))


def retention_cells(cohorts: dict[str, Any]) -> str:
    rows = list(cohorts.items())
    if not rows:
        return svg(900, 40, '<text x="0" y="20">no cohorts</text>')
    columns = max((len(c["retention"]) for _, c in rows), default=0)
    cell, left = 28, 100
    parts = []
    for r, (month, cohort) in enumerate(rows):
        parts.append(f'<text x="0" y="{r * cell + 18}">{month} ({cohort["customers"]})</text>')
        for k, share in cohort["retention"].items():
            x = left + (int(k) - 1) * cell
            shade = 0 if share is None else min(1.0, share * 2)
            colour = f"rgb({int(255 - 200 * shade)},{int(255 - 110 * shade)},{int(255 - 200 * shade)})"
            parts.append(
                f'<rect x="{x}" y="{r * cell}" width="{cell - 2}" height="{cell - 2}" fill="{colour}">'
                f"<title>{month}, month {k}: {percent(share)}</title></rect>"
            )
    for k in range(1, columns + 1):
        parts.append(f'<text x="{left + (k - 1) * cell + 8}" y="{len(rows) * cell + 14}">{k}</text>')
    return svg(left + columns * cell + 10, len(rows) * cell + 24, "".join(parts))


def axes(width: int, height: int, left: int, bottom: int, x_label: str) -> str:
    return (
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#999"/>'
        f'<line x1="{left}" y1="0" x2="{left}" y2="{height - bottom}" stroke="#999"/>'
        f'<text x="{left}" y="{height - 4}">{html.escape(x_label)}</text><text x="0" y="12">100%</text>'
    )


def conversion_curve(days: list[float], window_days: float, p80: float | None) -> str:
    width, height, left, bottom = 900, 240, 40, 24
    if not days:
        return svg(width, 40, '<text x="0" y="20">no second purchases</text>')
    span = max(days[-1], window_days, 1.0)
    plot_w, plot_h = width - left, height - bottom
    points = " ".join(
        f"{left + d / span * plot_w:.1f},{plot_h - (i + 1) / len(days) * plot_h:.1f}"
        for i, d in enumerate(days)
    )
    body = axes(width, height, left, bottom, f"days since the first order (0 to {span:.0f})")
    body += f'<polyline points="{points}" fill="none" stroke="#3182bd" stroke-width="2"/>'
    x = left + window_days / span * plot_w
    body += f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{plot_h}" stroke="#e6550d" stroke-dasharray="6 4"/>'
    if p80 is not None:
        x = left + p80 / span * plot_w
        body += f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{plot_h}" stroke="#333" stroke-dasharray="2 3"/>'
        body += f'<text x="{x + 4:.1f}" y="24">80 % by day {p80:.0f}</text>'
    return svg(width, height, body)


def window_bars(days: list[float]) -> str:
    if not days:
        return svg(900, 40, '<text x="0" y="20">no second purchases</text>')
    shares = [sum(1 for d in days if d < window) / len(days) for window in CANDIDATE_WINDOWS]
    rows = [
        (f"{window} days", share, f"{share:.0%}")
        for window, share in zip(CANDIDATE_WINDOWS, shares, strict=True)
    ]
    return bars(rows, "#31a354", left=90)


def bars(rows: list[tuple[str, float, str]], colour: str, left: int) -> str:
    """Horizontal bars: (label, length, the figure written after the bar), scaled to the longest."""
    width, row = 900, 24
    top = max((length for _, length, _ in rows), default=0) or 1
    parts = []
    for i, (label, length, figure) in enumerate(rows):
        bar = length / top * (width - left - 90)
        parts.append(
            f'<text x="0" y="{i * row + 16}">{html.escape(label)}</text>'
            f'<rect x="{left}" y="{i * row + 4}" width="{bar:.1f}" height="16" fill="{colour}"/>'
            f'<text x="{left + bar + 6:.1f}" y="{i * row + 17}">{figure}</text>'
        )
    return svg(width, len(rows) * row + 6, "".join(parts))


def pareto(spend: list[int]) -> str:
    width, height, left, bottom = 900, 240, 40, 24
    total = sum(spend)
    if not total:
        return svg(width, 40, '<text x="0" y="20">no revenue</text>')
    plot_w, plot_h = width - left, height - bottom
    running, points = 0, [f"{left},{plot_h}"]
    step = max(1, len(spend) // 400)  # a few hundred points draw the curve
    for i, amount in enumerate(spend):
        running += amount
        if i % step == 0 or i == len(spend) - 1:
            points.append(
                f"{left + (i + 1) / len(spend) * plot_w:.1f},{plot_h - running / total * plot_h:.1f}"
            )
    body = axes(width, height, left, bottom, "customers, biggest spenders first (0 to 100 %)")
    body += f'<line x1="{left}" y1="{plot_h}" x2="{width}" y2="0" stroke="#bbb" stroke-dasharray="4 4"/>'
    body += f'<polyline points="{" ".join(points)}" fill="none" stroke="#756bb1" stroke-width="2"/>'
    return svg(width, height, body)


def cohort_curves(curves: dict[str, Any], window_days: float, most: int = 12) -> str:
    width, height, left, bottom = 900, 260, 40, 24
    recent = list(curves.items())[-most:]
    if not recent:
        return svg(width, 40, '<text x="0" y="20">no cohorts</text>')
    days = len(next(iter(curves.values()))["converted_by_day"]) - 1
    plot_w, plot_h = width - left - 70, height - bottom
    body = axes(width, height, left, bottom, f"days since the first order (0 to {days})")
    for rank, (month, curve) in enumerate(recent):
        shade = int(200 - 170 * (rank + 1) / len(recent))  # older cohorts lighter
        points = [
            (left + day / days * plot_w, plot_h - share * plot_h)
            for day, share in enumerate(curve["converted_by_day"])
            if share is not None
        ]
        if len(points) < 2:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body += (
            f'<polyline points="{path}" fill="none" stroke="rgb({shade},{shade},255)" stroke-width="1.5">'
            f"<title>{month}: {curve['customers']:,} customers</title></polyline>"
        )
        x, y = points[-1]
        body += f'<text x="{x + 4:.1f}" y="{y + 4:.1f}">{month}</text>'
    x = left + window_days / days * plot_w
    body += f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{plot_h}" stroke="#e6550d" stroke-dasharray="6 4"/>'
    return svg(width, height, body)


DIMENSION_NAMES = {
    "category": "category of the first order",
    "payment_method": "payment method",
    "coupon": "coupon",
    "channel": "channel",
    "value_band": "value of the first order",
}


def drivers(drivers: dict[str, list[dict[str, Any]]], overall: float | None) -> str:
    width, left, row = 900, 230, 22
    bar_w = width - left - 170
    parts, y = [], 0
    for dimension, groups in drivers.items():
        parts.append(f'<text x="0" y="{y + 14}" font-weight="bold">{DIMENSION_NAMES[dimension]}</text>')
        y += row
        if not groups:
            parts.append(f'<text x="10" y="{y + 14}">no customer has had the whole window yet</text>')
            y += row
        for group in groups:
            colour = "#bdbdbd" if group["few"] else "#3182bd"
            low, high = left + group["low"] * bar_w, left + group["high"] * bar_w
            parts.append(
                f'<text x="10" y="{y + 14}">{html.escape(group["value"][:34])}</text>'
                f'<rect x="{left}" y="{y + 4}" width="{group["rate"] * bar_w:.1f}" height="12" '
                f'fill="{colour}">'
                f"<title>{html.escape(group['value'])}: {group['converted']:,} of {group['eligible']:,} "
                f"({percent(group['rate'])}, 95 % {percent(group['low'])} to {percent(group['high'])})"
                f"</title></rect>"
                f'<line x1="{low:.1f}" y1="{y + 10}" x2="{high:.1f}" y2="{y + 10}" stroke="#333"/>'
                f'<text x="{left + bar_w + 8}" y="{y + 14}">{percent(group["rate"])} of '
                f"{group['eligible']:,}</text>"
            )
            y += row
        y += 6
    if overall is not None:
        x = left + overall * bar_w
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{y}" stroke="#e6550d" stroke-dasharray="4 3"/>'
        )
    return svg(width, y + 4, "".join(parts))


def member_bars(segments: Counter[str], classes: Counter[str]) -> str:
    rows = [(f"segment {name}", n) for name, n in sorted(segments.items())]
    rows += [(f"class {name}", n) for name, n in sorted(classes.items())]
    return bars([(label, members, f"{members:,}") for label, members in rows], "#756bb1", left=230)


def bins(histogram: dict[str, Any], label: Callable[[float, float], str]) -> str:
    edges, counts = histogram["edges"], histogram["customers"]
    rows = [(label(edges[i], edges[i + 1]), count, f"{count:,}") for i, count in enumerate(counts)]
    return bars(rows, "#3182bd", left=120)


def tracking(tracking: dict[str, Any]) -> str:
    width, height, left, bottom = 900, 260, 60, 40
    months, actual, predicted = tracking["months"], tracking["actual"], tracking["predicted"]
    top = max([*actual, *predicted, 1])
    plot_w, plot_h = width - left - 10, height - bottom
    step = plot_w / max(len(months) - 1, 1)

    def line(values: list[float], style: str) -> str:
        points = " ".join(
            f"{left + i * step:.1f},{plot_h - v / top * plot_h:.1f}" for i, v in enumerate(values)
        )
        return f'<polyline points="{points}" fill="none" stroke="#3182bd" stroke-width="2" {style}/>'

    body = (
        f'<line x1="{left}" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#999"/>'
        f'<text x="0" y="12">{top:,.0f}</text>' + line(actual, "") + line(predicted, 'stroke-dasharray="6 4"')
    )
    for i, month in enumerate(months):
        if len(months) <= 24 or i % 3 == 0:
            x, y = left + i * step, plot_h + 14
            body += f'<text x="{x:.1f}" y="{y}" transform="rotate(45 {x:.1f},{y})">{month}</text>'
    end = tracking.get("calibration_end")
    if end and end[:7] in months:
        x = left + months.index(end[:7]) * step
        body += (
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{plot_h}" stroke="#e6550d" stroke-dasharray="2 3"/>'
        )
    return svg(width, height, body)
