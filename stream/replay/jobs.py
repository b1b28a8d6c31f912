"""`lifecycle replay --jobs N`: the partitions shared among N processes, one core each.

Partitions are independent (each has its own clock and customers), so job `j` replays the
partitions `p` with `p % N == j` (a line without a readable `customer_id` goes to job 0,
which rejects it). JSON-lines files are read once among the jobs: job `j` reads the `j`-th
of N shares of about equal bytes, keeps the lines of its customers and hands the others to
their jobs through files; once every job has read its share, each takes the lines handed to
it, sorts its lines and replays them. (Gzip, CSV and --arrival-order: every job reads every
line and keeps its own.) A line's position is its byte offset in the inputs laid end to end
(with one process: its index), so both orders are the input's.

Each job writes its outputs to files of its own, each line tagged with its place in the
order one process writes it: the input line that caused it (its instant and position), or,
after `--until`, its partition; states by partition. The parent merges the jobs' files by
those tags while the jobs write them: the output is the same, byte for byte, as with one job
(`detected_at`, the wall clock, aside).
"""

from __future__ import annotations

import bisect
import multiprocessing
import multiprocessing.connection
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..config import Config
from ..inputs.csv_text import InputFormatError
from ..inputs.files import Piece, open_input, piece_lines, split_inputs
from ..inputs.sources import UnreadableInput, format_lines
from ..inputs.time_order import (
    BEFORE_ALL,
    Entry,
    OrderedLine,
    OrderingStats,
    SortedRuns,
    SourcedLine,
    keyed_lines,
    read_chunks,
    write_chunks,
)
from ..kafka.partitioning import partition_for
from .driver import ReplayStats
from .merge import FollowingMerge
from .run import (
    ReplayError,
    ReplayOptions,
    ReplayOutputs,
    ReplayResult,
    counted_as_replayed,
    replay_here,
    replay_lines,
)
from .shared_count import SharedCount, SharedProgress

_KINDS = ReplayOutputs._fields  # the jobs' files, one per output
_HAND_OVER_CHUNK = 4096


def replay_in_jobs(
    options: ReplayOptions,
    config: Config,
    outputs: ReplayOutputs,
    jobs: int,
    new_progress: Callable[[], Any] | None = None,
    groups: int | None = None,
) -> ReplayResult:
    """Replay in `jobs` processes, the outputs as one process writes them; `new_progress`
    makes what shows the progress (a `ReplayProgress`; None: nothing shown).

    With `groups` (more than `jobs`: a memory budget, `stream.replay.memory`), the partitions
    are shared among that many processes, `jobs` of them at once, each reading every line and
    keeping its own."""
    _check_formats(options)
    groups = max(groups or jobs, jobs)
    directory = Path(tempfile.mkdtemp(prefix="lifecycle-replay-"))
    try:
        context = multiprocessing.get_context("fork")
        paths = options.inputs.paths
        # shares of the input are handed over among jobs running together: all of them
        shares = split_inputs(paths, groups) if _shareable(options) and groups == jobs else None
        meeting = _Meeting(context, groups) if shares is not None else None
        counts = SharedProgress(context, groups, shown=new_progress is not None)
        processes = [
            context.Process(
                target=_job,
                args=(options, config, job, groups, directory, outputs, shares, meeting, counts),
            )
            for job in range(groups)
        ]
        merges = [
            FollowingMerge([directory / f"{job}.{kind}" for job in range(groups)], handle)
            for kind, handle in zip(_KINDS, outputs, strict=True)
            if handle is not None
        ]
        starting = _Starting(processes, at_once=jobs)
        progress = (
            new_progress() if new_progress is not None else None
        )  # after the forks: a bar starts a thread
        try:
            failed = _wait_for(starting, meeting, merges, lambda: counts.show(progress))
        finally:
            for merge in merges:
                merge.close()
            if progress is not None:
                progress.close()
        if failed:
            raise ReplayError(f"replay job(s) {', '.join(map(str, failed))} failed; see the messages above")
        return _merged([orjson.loads((directory / f"{job}.json").read_bytes()) for job in range(groups)])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class _Starting:
    """The jobs' processes, started `at_once` at a time: the next as one ends."""

    def __init__(self, processes: list[Any], at_once: int) -> None:
        self.processes = processes
        self.waiting = list(processes)
        self.running: dict[Any, Any] = {}
        self.at_once = at_once
        self.more()

    def more(self) -> None:
        while self.waiting and len(self.running) < self.at_once:
            process = self.waiting.pop(0)
            process.start()
            self.running[process.sentinel] = process


def _wait_for(
    starting: _Starting,
    meeting: _Meeting | None,
    merges: list[FollowingMerge],
    on_wake: Callable[[], None] = lambda: None,
) -> list[int]:
    """The jobs that failed, their outputs merged as they come while they run. The first to
    fail breaks the meeting: the others, which would wait there for its share forever, fail
    too; and no job waiting to start starts."""
    processes, running = starting.processes, starting.running
    ended = [False] * len(processes)
    while running:
        for sentinel in multiprocessing.connection.wait(list(running), timeout=_FOLLOW_SECONDS):
            process = running.pop(sentinel)
            process.join()
            ended[processes.index(process)] = True
            if process.exitcode != 0:
                starting.waiting.clear()
                if meeting is not None:
                    meeting.barrier.abort()
        starting.more()
        for merge in merges:
            merge.step(ended)
        on_wake()
    failed = [job for job, process in enumerate(processes) if process.exitcode != 0]
    if not failed:
        for merge in merges:
            merge.finish()
    return failed


class _Meeting:
    """Where jobs that read shares of the input wait for each other, and what each tells the
    others of its share: the latest instant in it and the instant of its last line with one
    (BEFORE_ALL: none)."""

    def __init__(self, context: Any, jobs: int) -> None:
        self.barrier = context.Barrier(jobs)
        self.latest = context.RawArray("q", jobs)
        self.last = context.RawArray("q", jobs)


_FOLLOW_SECONDS = 0.2


def _check_formats(options: ReplayOptions) -> None:
    """A file not of its format stops the replay before any job starts (as with one job)."""
    inputs = options.inputs
    for path in inputs.paths:
        with open_input(path) as stream:
            try:
                next(iter(format_lines(stream, inputs.input_format, inputs.layout)), None)
            except (InputFormatError, OSError, EOFError) as error:
                raise UnreadableInput(f"input {path}: {error}") from None


def _shareable(options: ReplayOptions) -> bool:
    """Whether the inputs can be cut into shares by bytes: plain JSON-lines files, sorted."""
    plain = all(path != "-" and not path.endswith(".gz") for path in options.inputs.paths)
    return plain and options.inputs.input_format == "jsonl" and not options.arrival_order


def job_of(customer_id: str | None, partitions: int, jobs: int) -> int:
    """The job that replays this customer's lines: the one of their partition. A line without
    a customer id is rejected whoever reads it: job 0 does."""
    return 0 if customer_id is None else partition_for(customer_id, partitions) % jobs


def _job(
    options: ReplayOptions,
    config: Config,
    job: int,
    jobs: int,
    directory: Path,
    wanted: ReplayOutputs,
    shares: list[list[Piece]] | None,
    meeting: _Meeting | None,
    counts: SharedProgress,
) -> None:
    count = config.kafka.partitions
    # asked for every line of the input: a dict of this job's answers costs half a lookup
    # in partition_for's cache (0.3-0.9 s less a job on a 1M-line history)
    answers: dict[str | None, int] = {}

    def job_for(customer_id: str | None) -> int:
        answer = answers.get(customer_id)
        if answer is None:
            answer = answers[customer_id] = job_of(customer_id, count, jobs)
        return answer

    files = [
        open(directory / f"{job}.{kind}", "wb") if handle is not None else None  # noqa: SIM115
        for kind, handle in zip(_KINDS, wanted, strict=True)
    ]
    outputs = ReplayOutputs(*files)
    if shares is not None and meeting is not None:
        ordering = OrderingStats(rising=array("q"))
        lines = _share_lines(shares, job, job_for, directory, meeting, ordering, counts.read)
        progress = counts.for_job(counts_input=True)
        if progress is not None:
            lines = counted_as_replayed(lines, ordering, progress)
        result = replay_lines(config, options.until, outputs, lines, ordering, tagged=True, progress=progress)
    else:
        mine = lambda customer_id: job_for(customer_id) == job  # noqa: E731
        # every job reads every line: job 0 counts them
        progress = counts.for_job(counts_input=job == 0)
        result = replay_here(options, config, outputs, keep=mine, progress=progress)
        if job != 0:  # every job read every line: job 0 tells how they were ordered
            result = result._replace(lines=0, out_of_order=0)
    for handle in files:
        if handle is not None:
            handle.close()
    stats = result.stats
    summary = {
        "read": stats.read,
        "outcomes": {str(outcome): n for outcome, n in stats.outcomes.items()},
        "transitions": dict(stats.transitions),
        "segment_changes": dict(stats.segment_changes),
        "firings": dict(stats.firings),
        "folded": stats.folded,
        "states": dict(result.states),
        "lines": result.lines,
        "out_of_order": result.out_of_order,
    }
    (directory / f"{job}.json").write_bytes(orjson.dumps(summary))


def _share_lines(
    shares: list[list[Piece]],
    job: int,
    job_for: Callable[[str | None], int],
    directory: Path,
    meeting: _Meeting,
    ordering: OrderingStats,
    read: SharedCount,
) -> Iterator[OrderedLine]:
    """This job's lines in time order: those of its customers in its share of the input, and
    those the other jobs found in theirs. `ordering` ends up counting this share's lines."""
    jobs = len(shares)
    runs = SortedRuns()
    unplaced: list[Entry] = []  # own lines before the share's first instant: placed later
    outgoing = {other: _Outgoing(directory / f"{job}-{other}.lines") for other in range(jobs) if other != job}
    try:
        pieces = shares[job]
        lines = _read_counted(pieces, read)
        for entry, customer_id in keyed_lines(lines, ordering, previous=None):
            to = job_for(customer_id)
            if to != job:
                outgoing[to].add(entry)
            elif entry[0] is None:
                unplaced.append(entry)
            else:
                runs.add(entry)
        read.close()
        for writer in outgoing.values():
            writer.close()
        meeting.latest[job] = ordering.latest
        meeting.last[job] = BEFORE_ALL if ordering.last is None else ordering.last
        meeting.barrier.wait()
        # a line of this share is also out of order when older than a line of a share before
        before = max(meeting.latest[:job], default=BEFORE_ALL)
        assert ordering.rising is not None
        ordering.out_of_order += bisect.bisect_left(ordering.rising, before)
        for entry in unplaced:
            runs.add((_previous(meeting, job), *entry[1:]))
        for other in outgoing:
            handed = directory / f"{other}-{job}.lines"
            with open(handed, "rb") as handle:
                for entry in read_chunks(handle):
                    runs.add(entry if entry[0] is not None else (_previous(meeting, other), *entry[1:]))
            handed.unlink()  # here, beside the other jobs, rather than by the parent after them
        ordering.runs = runs.count
        yield from runs.ordered()
    finally:
        runs.close()


def _read_counted(pieces: list[Piece], read: SharedCount) -> Iterator[tuple[int, SourcedLine]]:
    for piece in pieces:
        for at, line in piece_lines(piece):
            read.update(len(line.raw) + 1)
            yield at, SourcedLine(piece.path, line)


def _previous(meeting: _Meeting, share: int) -> int:
    """The instant of the last line with one before the share: where its lines before its
    first instant sort."""
    return next((last for last in reversed(meeting.last[:share]) if last != BEFORE_ALL), BEFORE_ALL)


class _Outgoing:
    """Lines handed to another job, written in chunks to a file it reads once all have read."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.entries: list[Entry] = []

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        if len(self.entries) >= _HAND_OVER_CHUNK:
            write_chunks(self.handle, self.entries)
            self.entries = []

    def close(self) -> None:
        write_chunks(self.handle, self.entries)
        self.handle.close()


def _merged(summaries: list[dict[str, Any]]) -> ReplayResult:
    stats = ReplayStats()
    states: Counter[str] = Counter()
    for summary in summaries:
        stats.read += summary["read"]
        stats.outcomes.update(summary["outcomes"])
        stats.transitions.update(summary["transitions"])
        stats.segment_changes.update(summary["segment_changes"])
        stats.firings.update(summary["firings"])
        stats.folded += summary["folded"]
        states.update(summary["states"])
    lines = sum(s["lines"] for s in summaries)
    out_of_order = sum(s["out_of_order"] for s in summaries)
    return ReplayResult(stats, states, lines, out_of_order)
