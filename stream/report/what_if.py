"""What a configuration change would change, from `stream.replay.what_if`: per kind of change,
how many each side would have emitted per week, who would have received one under one side
and not the other (with examples), and the KPIs that depend on the configuration."""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from ..lifecycle.instants import DAY_US, format_rfc3339
from ..replay.held import Emitted, Side
from . import comparison_plots
from .kpis import kpis
from .page import STYLE

EXAMPLES = 20


def comparison(sides: tuple[Side, Side], names: tuple[str, str], until_us: int) -> dict[str, Any]:
    first, second = (_emitted(side) for side in sides)
    kinds = sorted(set(first.by_week) | set(second.by_week))
    changes = {}
    for kind in kinds:
        weeks = sorted(set(first.by_week[kind]) | set(second.by_week[kind]))
        a, b = first.customers[kind], second.customers[kind]
        changes[kind] = {
            "total": [sum(first.by_week[kind].values()), sum(second.by_week[kind].values())],
            "per_week": {w: [first.by_week[kind][w], second.by_week[kind][w]] for w in weeks},
            "customers": [len(a), len(b)],
            "only_first": {"customers": len(a - b), "examples": sorted(a - b)[:EXAMPLES]},
            "only_second": {"customers": len(b - a), "examples": sorted(b - a)[:EXAMPLES]},
        }
    return {
        "configs": list(names),
        "until": format_rfc3339(until_us),
        "changes": changes,
        "kpis": [_configured_kpis(side, until_us) for side in sides],
    }


def _emitted(side: Side) -> Emitted:
    assert side.emitted is not None, "a what-if side tallies what it emitted"
    return side.emitted


def _configured_kpis(side: Side, until_us: int) -> dict[str, Any]:
    """The KPIs a configuration moves: states, the second purchase within the one-timer window,
    and the members of each segment and class."""
    book = side.config.policy_book()
    figures = kpis(side.customers(), until_us, lambda c: book.for_store(c.store_id).one_timer_window)
    segments: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    for customer in side.customers():
        segments.update(customer.segments)
        if customer.segment_class is not None:
            classes[customer.segment_class] += 1
    return {
        "one_timer_window_days": book.default.one_timer_window / DAY_US,
        "states": figures["states"],
        "second_purchase_within_window": figures["second_purchase_within_window"],
        "segment_members": dict(sorted(segments.items())),
        "class_members": dict(sorted(classes.items())),
    }


def render(document: dict[str, Any]) -> str:
    """One page, offline: the changes side by side, then the KPIs."""
    first, second = (html.escape(name) for name in document["configs"])
    sections = []
    for kind, found in document["changes"].items():
        weekly = [(week, a, b) for week, (a, b) in found["per_week"].items()]
        only = (
            f"<p>{found['only_first']['customers']:,} customers would get it under {first} only "
            f"{_examples(found['only_first'])}; {found['only_second']['customers']:,} under {second} only "
            f"{_examples(found['only_second'])}.</p>"
        )
        sections.append(
            f"<section><h2>{html.escape(kind)}</h2><p class=what>{found['total'][0]:,} under {first}, "
            f"{found['total'][1]:,} under {second}; bars: per week, {first} blue, {second} orange.</p>"
            f"{only}{comparison_plots.paired_weeks(weekly)}</section>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>"
        for key in document["kpis"][0]
        for a, b in [(document["kpis"][0][key], document["kpis"][1][key])]
    )
    kpi_table = f"<table><tr><th>KPI</th><th>{first}</th><th>{second}</th></tr>{rows}</table>"
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>What if: {first} or {second}</title>"
        f"<style>{STYLE}</style></head><body><h1>What if: {first} or {second}</h1>"
        f"<p>The same history under both configurations, up to {document['until']}.</p>"
        f"<h2>KPIs that depend on the configuration</h2>{kpi_table}{''.join(sections)}</body></html>"
    )


def _examples(only: dict[str, Any]) -> str:
    if not only["examples"]:
        return ""
    shown = ", ".join(html.escape(example) for example in only["examples"])
    return f"(e.g. {shown})"
