"""Input lines in `occurred_at` order, in bounded memory, for replaying exports sorted otherwise.

Shops export newest first, or by order number, or by customer; replayed as read, nearly every
event would be late and the state table would be applied at the wrong instants. Lines are
sorted by (`occurred_at`, position in the input), so arrival order still decides between
equal instants. Up to `run_size` lines are sorted in memory; a longer input is sorted in runs
written to temporary files and merged, so memory stays bounded whatever the file's size.
A line without a readable `occurred_at` keeps its place relative to the line before it: it
will be rejected anyway, with its line number.
"""

from __future__ import annotations

import heapq
import marshal
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, NamedTuple

import msgspec

from ..lifecycle.instants import parse_rfc3339
from .files import InputLine

RUN_SIZE = 200_000
_SPILL_CHUNK = 4096
_CHUNK_SIZE = struct.Struct("<Q")


class SourcedLine(NamedTuple):
    source: str  # the input path
    line: InputLine


class _Head(msgspec.Struct):
    # any JSON value: a field of another type makes that field unreadable, not the other one
    occurred_at: Any = None
    customer_id: Any = None


_head = msgspec.json.Decoder(_Head).decode


class OrderingStats:
    """How far from time order the input was, for the summary."""

    def __init__(self) -> None:
        self.lines = 0
        self.out_of_order = 0  # lines older than a line read before them
        self.runs = 0


def line_head(line: InputLine) -> tuple[int | None, str | None]:
    """The line's `occurred_at` (epoch µs) and `customer_id`, from one decoding; each None
    where the line has no readable one."""
    if line.error is not None:
        return None, None
    try:
        head = _head(line.raw)
    except msgspec.DecodeError:
        return None, None
    customer_id = head.customer_id if isinstance(head.customer_id, str) else None
    if not isinstance(head.occurred_at, str):
        return None, customer_id
    try:
        return parse_rfc3339(head.occurred_at), customer_id
    except ValueError:
        return None, customer_id


class OrderedLine(NamedTuple):
    """A line with its place in the order replayed: (instant, position in the whole input)."""

    instant: int
    position: int
    sourced: SourcedLine


def in_time_order(
    lines: Iterable[SourcedLine], stats: OrderingStats | None = None, run_size: int = RUN_SIZE
) -> Iterator[SourcedLine]:
    """`lines` sorted by (`occurred_at`, input position)."""
    return (ordered.sourced for ordered in ordered_lines(lines, stats, run_size))


def ordered_lines(
    lines: Iterable[SourcedLine],
    stats: OrderingStats | None = None,
    run_size: int = RUN_SIZE,
    keep: Callable[[str | None], bool] | None = None,
) -> Iterator[OrderedLine]:
    """`lines` sorted by (`occurred_at`, input position), with their sort keys; only those
    whose customer id (None: none readable) `keep` keeps, placed where they would be among
    all (a replay job keeps its share)."""
    stats = stats or OrderingStats()
    run: list[tuple[int, int, str, int, bytes, str | None]] = []
    spilled: list[IO[bytes]] = []
    latest = previous = -(1 << 62)
    try:
        for position, (source, line) in enumerate(lines):
            stats.lines += 1
            instant, customer_id = line_head(line)
            key = previous if instant is None else instant
            if instant is not None:
                if instant < latest:
                    stats.out_of_order += 1
                latest = max(latest, instant)
                previous = instant
            if keep is not None and not keep(customer_id):
                continue
            run.append((key, position, source, line.line, line.raw, line.error))
            if len(run) >= run_size:
                spilled.append(_spill(run))
                run = []
        run.sort()
        stats.runs = len(spilled) + (1 if run else 0)
        merged = heapq.merge(run, *(_read_back(handle) for handle in spilled)) if spilled else iter(run)
        for key, position, source, number, raw, error in merged:
            yield OrderedLine(key, position, SourcedLine(source, InputLine(number, raw, error)))
    finally:
        for handle in spilled:
            handle.close()


def _spill(run: list[tuple[int, int, str, int, bytes, str | None]]) -> IO[bytes]:
    run.sort()
    handle = tempfile.TemporaryFile(prefix="lifecycle-sort-")  # noqa: SIM115 - closed by the merge
    for start in range(0, len(run), _SPILL_CHUNK):  # one call per chunk: marshal's per-call cost
        chunk = marshal.dumps(run[start : start + _SPILL_CHUNK])
        handle.write(_CHUNK_SIZE.pack(len(chunk)) + chunk)
    handle.seek(0)
    return handle


def _read_back(handle: IO[bytes]) -> Iterator[tuple[int, int, str, int, bytes, str | None]]:
    # each chunk read whole and decoded from bytes: `marshal.load` from a file reads every
    # object through the file's Python methods, ten times slower (5 µs a line, 4 s of a
    # 1M-line replay)
    while header := handle.read(_CHUNK_SIZE.size):
        (size,) = _CHUNK_SIZE.unpack(header)
        yield from marshal.loads(handle.read(size))
