"""Plots of two sides compared: an experiment's groups, two configurations' weeks."""

from __future__ import annotations

from .plots import axes, percent, svg

GROUP_COLOURS = {"treatment": "#3182bd", "holdout": "#969696"}


def experiment_curves(converted_by_day: dict[str, list[float | None]], eligible: dict[str, int]) -> str:
    """Both groups' share converted by day since exposure."""
    width, height, left, bottom = 900, 240, 40, 24
    days = len(next(iter(converted_by_day.values()))) - 1
    plot_w, plot_h = width - left - 110, height - bottom
    body = axes(width, height, left, bottom, f"days since the exposure (0 to {days})")
    top = max((s for curve in converted_by_day.values() for s in curve if s is not None), default=0.0) or 1.0
    for group, curve in converted_by_day.items():
        points = [
            (left + day / max(days, 1) * plot_w, plot_h - share / top * (plot_h - 10))
            for day, share in enumerate(curve)
            if share is not None
        ]
        if len(points) < 2:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        colour = GROUP_COLOURS[group]
        body += (
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{group}: {eligible.get(group, 0):,} eligible</title></polyline>"
        )
        x, y = points[-1]
        last = curve[len(points) - 1] or 0.0
        body += f'<text x="{x + 4:.1f}" y="{y + 4:.1f}" fill="{colour}">{group} {percent(last)}</text>'
    return svg(width, height, body)


def paired_weeks(weekly: list[tuple[str, int, int]]) -> str:
    """Per week, two bars side by side: the first configuration's and the second's."""
    if not weekly:
        return svg(900, 40, '<text x="0" y="20">none under either</text>')
    width, height, bottom = 900, 160, 20
    top = max(max(a, b) for _, a, b in weekly) or 1
    step = width / len(weekly)
    parts = []
    for i, (week, a, b) in enumerate(weekly):
        for j, (count, colour) in enumerate(((a, "#3182bd"), (b, "#e6550d"))):
            h = count / top * (height - bottom - 4)
            parts.append(
                f'<rect x="{i * step + j * step / 2:.1f}" y="{height - bottom - h:.1f}" '
                f'width="{max(step / 2 - 1, 0.5):.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{week}: {count:,}</title></rect>"
            )
    parts.append(f'<text x="0" y="{height - 4}">{weekly[0][0]}</text>')
    parts.append(f'<text x="{width - 60}" y="{height - 4}">{weekly[-1][0]}</text>')
    return svg(width, height, "".join(parts))
