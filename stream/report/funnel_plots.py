"""Plots of the funnel: sign-ups per month by source, first orders after signing up, and
each trigger's firings per week."""

from __future__ import annotations

import html
from typing import Any

from .plots import percent, svg

SOURCE_COLOURS = ["#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#fd8d3c", "#9ecae1"]


def sign_up_bars(months: dict[str, dict[str, int]]) -> str:
    """A bar per month, stacked by source."""
    if not months:
        return svg(900, 40, '<text x="0" y="20">no sign-up in the history</text>')
    sources = sorted({s for counts in months.values() for s in counts})
    colour = {s: SOURCE_COLOURS[i % len(SOURCE_COLOURS)] for i, s in enumerate(sources)}
    width, height, bottom, legend = 900, 200, 20, 16
    top = max(sum(counts.values()) for counts in months.values()) or 1
    step = width / len(months)
    parts = []
    for i, (month, counts) in enumerate(months.items()):
        y: float = height - bottom
        for source in sources:
            h = counts.get(source, 0) / top * (height - bottom - legend - 4)
            y -= h
            parts.append(
                f'<rect x="{i * step:.1f}" y="{y:.1f}" width="{max(step - 1, 0.5):.1f}" height="{h:.1f}" '
                f'fill="{colour[source]}"><title>{month} {html.escape(source)}: {counts.get(source, 0):,}'
                "</title></rect>"
            )
    parts.append(f'<text x="0" y="{height - 4}">{next(iter(months))}</text>')
    parts.append(f'<text x="{width - 60}" y="{height - 4}">{list(months)[-1]}</text>')
    for i, source in enumerate(sources):
        parts.append(
            f'<rect x="{i * 130}" y="0" width="10" height="10" fill="{colour[source]}"/>'
            f'<text x="{i * 130 + 14}" y="10">{html.escape(source[:16])}</text>'
        )
    return svg(width, height, "".join(parts))


def first_order_shares(by_source: dict[str, dict[str, Any]], horizons: tuple[int, ...]) -> str:
    """Per horizon, a bar per source: the share who ordered, with its interval."""
    width, left, row = 900, 200, 22
    bar_w = width - left - 190
    parts, y = [], 0
    for days in horizons:
        parts.append(f'<text x="0" y="{y + 14}" font-weight="bold">first order within {days} days</text>')
        y += row
        for source, figures in by_source.items():
            figure = figures[f"{days}d"]
            share = figure["share"]
            if share is None:
                continue
            low, high = left + figure["low"] * bar_w, left + figure["high"] * bar_w
            parts.append(
                f'<text x="10" y="{y + 14}">{html.escape(source[:28])}</text>'
                f'<rect x="{left}" y="{y + 4}" width="{share * bar_w:.1f}" height="12" fill="#3182bd">'
                f"<title>{html.escape(source)}: {percent(share)} (95 % {percent(figure['low'])} to "
                f"{percent(figure['high'])}) of {figures['prospects']:,}</title></rect>"
                f'<line x1="{low:.1f}" y1="{y + 10}" x2="{high:.1f}" y2="{y + 10}" stroke="#333"/>'
                f'<text x="{left + bar_w + 8}" y="{y + 14}">{percent(share)} of {figures["prospects"]:,}'
                f" ({figure['seen_whole']:,} seen {days} days)</text>"
            )
            y += row
        y += 6
    return svg(width, y + 4, "".join(parts))


def week_bars(weeks: dict[str, int]) -> str:
    """A bar per ISO week."""
    if not weeks:
        return svg(900, 40, '<text x="0" y="20">no firing</text>')
    width, height, bottom = 900, 120, 20
    top = max(weeks.values()) or 1
    step = width / len(weeks)
    parts = [
        f'<rect x="{i * step:.1f}" y="{height - bottom - n / top * (height - bottom - 4):.1f}" '
        f'width="{max(step - 1, 0.5):.1f}" height="{n / top * (height - bottom - 4):.1f}" fill="#756bb1">'
        f"<title>{week}: {n:,}</title></rect>"
        for i, (week, n) in enumerate(weeks.items())
    ]
    parts.append(f'<text x="0" y="{height - 4}">{next(iter(weeks))}</text>')
    parts.append(f'<text x="{width - 60}" y="{height - 4}">{list(weeks)[-1]}</text>')
    return svg(width, height, "".join(parts))
