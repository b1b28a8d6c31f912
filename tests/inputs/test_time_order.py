"""Sorting input lines by occurred_at, in memory and in runs spilled to disk."""

from __future__ import annotations

import orjson

from stream.inputs.files import InputLine
from stream.inputs.time_order import OrderingStats, SourcedLine, in_time_order
from stream.lifecycle.instants import format_rfc3339
from tests.helpers import at, placed


def _lines(days: list[int]) -> list[SourcedLine]:
    return [
        SourcedLine("f", InputLine(n + 1, orjson.dumps(placed("c", f"o{n}", at(day)))))
        for n, day in enumerate(days)
    ]


def _days(lines: list[SourcedLine]) -> list[str]:
    return [orjson.loads(s.line.raw)["occurred_at"] for s in lines]


def test_lines_come_out_by_instant_with_ties_in_input_order_whatever_the_run_size():
    days = [5, 3, 9, 3, 1, 7, 3, 2, 8, 0]
    expected = [format_rfc3339(at(d)) for d in sorted(days)]
    for run_size in (1, 3, 100):
        stats = OrderingStats()
        out = list(in_time_order(_lines(days), stats, run_size=run_size))
        assert _days(out) == expected
        ties = [s.line.line for s in out if orjson.loads(s.line.raw)["occurred_at"] == format_rfc3339(at(3))]
        assert ties == [2, 4, 7]
        assert stats.lines == 10 and stats.out_of_order == 8
        assert stats.runs == (10 if run_size == 1 else 4 if run_size == 3 else 1)


def test_an_unreadable_line_keeps_its_place_after_the_line_before_it():
    lines = _lines([4, 2])
    lines.insert(1, SourcedLine("f", InputLine(9, b"not json")))
    out = list(in_time_order(lines, run_size=2))
    assert [s.line.line for s in out] == [2, 1, 9]
