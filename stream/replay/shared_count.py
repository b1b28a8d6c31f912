"""Counts that forked jobs add to and their parent shows on its progress bars."""

from __future__ import annotations

from typing import Any


class SharedCount:
    """Each job adds what it counted once `flush_at` has gathered, so the shared lock is not
    taken for every line or batch; `close` adds the rest. The parent calls `show` when it
    wakes, moving its bar to the total so far."""

    def __init__(self, context: Any, flush_at: int) -> None:
        self.total = context.Value("q", 0)
        self.flush_at = flush_at
        self.unsent = 0

    def update(self, count: int) -> None:
        self.unsent += count
        if self.unsent >= self.flush_at:
            self.close()

    def close(self) -> None:
        with self.total.get_lock():
            self.total.value += self.unsent
        self.unsent = 0

    def show(self, progress: Any) -> None:
        if progress is not None:
            progress.update(self.total.value - progress.n)


class SharedProgress:
    """The jobs' progress summed for the parent's `ReplayProgress`: bytes read, then, once
    every job has read its lines, lines replayed out of all those read. `shown`: the parent
    shows bars (with none, the jobs count no lines replayed)."""

    def __init__(self, context: Any, jobs: int, shown: bool) -> None:
        self.read = SharedCount(context, flush_at=1 << 20)  # bytes: a megabyte at a time
        # lines: a job replays a few tens of thousands a second, the parent looks 5 times a second
        self.replayed = SharedCount(context, flush_at=4096)
        self.lines = context.Value("q", 0)  # lines read, added by each job once it has read
        self.reading = context.Value("q", jobs)  # jobs still reading
        self.shown = shown

    def for_job(self, counts_input: bool) -> JobProgress | None:
        """What a job counts for the parent's bars (None: no bars). `counts_input`: the job's
        reading is counted (when every job reads every line, only one job's is)."""
        return JobProgress(self, counts_input) if self.shown else None

    def show(self, progress: Any) -> None:
        """Move the parent's bars (None: no terminal) to the jobs' counts so far."""
        if progress is None:
            return
        if progress.replay is None:
            # asked before the bytes are shown: a job flushes its bytes before it stops reading
            all_read = self.reading.value == 0
            self.read.show(progress.read)
            if all_read:
                progress.start_replay(self.lines.value)
        if progress.replay is not None:
            self.replayed.show(progress.replay)


class JobProgress:
    """One job's part of a `SharedProgress`, taken where `replay_here` takes a `ReplayProgress`."""

    def __init__(self, shared: SharedProgress, counts_input: bool) -> None:
        self.shared = shared
        self.counts_input = counts_input
        self.read = shared.read if counts_input else None

    def start_replay(self, lines: int) -> None:
        shared = self.shared
        shared.read.close()
        if self.counts_input:
            with shared.lines.get_lock():
                shared.lines.value += lines
        with shared.reading.get_lock():
            shared.reading.value -= 1

    def replayed(self, lines: int) -> None:
        self.shared.replayed.update(lines)

    def close(self) -> None:
        self.shared.read.close()
        self.shared.replayed.close()
