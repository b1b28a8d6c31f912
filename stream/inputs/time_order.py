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
from array import array
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


# the instant before every line: the key of a line without an instant before any with one
BEFORE_ALL = -(1 << 62)

# a line sorted with its place: (instant, position in the whole input, source, line number,
# raw bytes, reason it is unreadable)
Entry = tuple[int, int, str, int, bytes, str | None]


class OrderingStats:
    """How far from time order the input was, for the summary."""

    def __init__(self, rising: array[int] | None = None) -> None:
        self.lines = 0
        self.out_of_order = 0  # lines older than a line read before them
        self.runs = 0
        self.latest = BEFORE_ALL  # the latest instant read
        self.last: int | None = None  # the instant of the last line read with one, if any
        # given for a share of the input, whose count out of order also depends on the lines
        # before it: the instants of its lines that are older than none of its own before them
        self.rising = rising


def line_head(line: InputLine) -> tuple[int | None, str | None]:
    """The line's `occurred_at` (epoch µs) and `customer_id`, from one decoding; each None
    where the line has no readable one."""
    if line.error is not None:
        return None, None
    try:
        head = _head(line.raw)
    except Exception:  # unreadable in any way: decode_event gives the reason later
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
    runs = SortedRuns(run_size)
    try:
        for entry, customer_id in keyed_lines(enumerate(lines), stats):
            if keep is None or keep(customer_id):
                runs.add(entry)
        stats.runs = runs.count
        yield from runs.ordered()
    finally:
        runs.close()


def keyed_lines(
    lines: Iterable[tuple[int, SourcedLine]], stats: OrderingStats, previous: int | None = BEFORE_ALL
) -> Iterator[tuple[Entry, str | None]]:
    """Each (position, line) as the entry it is sorted by, with its customer id; counted in
    `stats`. A line without an instant sorts right after the line before it: at `previous`
    (None: not known yet, for a share of the input) until a line has an instant."""
    latest = stats.latest
    rising = stats.rising
    for position, (source, line) in lines:
        stats.lines += 1
        instant, customer_id = line_head(line)
        if instant is not None:
            if instant < latest:
                stats.out_of_order += 1
            else:
                latest = instant
                if rising is not None:
                    rising.append(instant)
            previous = instant
        # a key of None (no instant yet in a share) is replaced before the entry is sorted
        key: Any = previous
        yield (key, position, source, line.line, line.raw, line.error), customer_id
    stats.latest = latest
    stats.last = previous


class SortedRuns:
    """Entries sorted in bounded memory: up to `run_size` in memory, each run beyond it
    sorted and spilled to a temporary file, all merged at the end."""

    def __init__(self, run_size: int = RUN_SIZE) -> None:
        self.run_size = run_size
        self.run: list[Entry] = []
        self.spilled: list[IO[bytes]] = []

    def add(self, entry: Entry) -> None:
        self.run.append(entry)
        if len(self.run) >= self.run_size:
            self.run.sort()
            handle = tempfile.TemporaryFile(prefix="lifecycle-sort-")  # noqa: SIM115 - closed by close()
            write_chunks(handle, self.run)
            handle.seek(0)
            self.spilled.append(handle)
            self.run = []

    @property
    def count(self) -> int:
        return len(self.spilled) + (1 if self.run else 0)

    def ordered(self) -> Iterator[OrderedLine]:
        self.run.sort()
        merged = heapq.merge(self.run, *map(read_chunks, self.spilled)) if self.spilled else iter(self.run)
        for key, position, source, number, raw, error in merged:
            yield OrderedLine(key, position, SourcedLine(source, InputLine(number, raw, error)))

    def close(self) -> None:
        for handle in self.spilled:
            handle.close()


def write_chunks(handle: IO[bytes], entries: list[Entry]) -> None:
    for start in range(0, len(entries), _SPILL_CHUNK):  # one call per chunk: marshal's per-call cost
        chunk = marshal.dumps(entries[start : start + _SPILL_CHUNK])
        handle.write(_CHUNK_SIZE.pack(len(chunk)) + chunk)


def read_chunks(handle: IO[bytes]) -> Iterator[Entry]:
    # each chunk read whole and decoded from bytes: `marshal.load` from a file reads every
    # object through the file's Python methods, eight times slower (4 µs a line, 2-4 s of a
    # 1M-line replay)
    while header := handle.read(_CHUNK_SIZE.size):
        (size,) = _CHUNK_SIZE.unpack(header)
        yield from marshal.loads(handle.read(size))
