"""The jobs' output files of a `--jobs` replay merged into one as they are written, in the
order one process writes its lines (`stream.replay.jobs`)."""

from __future__ import annotations

import bisect
import operator
from pathlib import Path
from typing import Any

from .run import TAG_WIDTH

# bytes held for one job before reading from its file waits for the others
AHEAD_BYTES = 16 << 20


class FollowingMerge:
    """The jobs' files of one output merged into it while the jobs write them, in the order
    one process writes its lines: by their tags (each job writes its lines in tag order, and
    no two jobs write the same tag; a job's lines of one tag keep their order).

    After the jobs, a merge of a 1M-event replay's outputs took a second with the machine's
    other core idle; alongside them it costs that second on both. A line is written once
    every job still running has written a line with a tag as high, so what is held is what
    one job is ahead of the slowest; reading stops at `AHEAD_BYTES` held for a job, and the
    rest waits in its file."""

    def __init__(self, parts: list[Path], out: Any) -> None:
        for part in parts:
            part.touch()  # before the jobs start: each opens its own file to write, truncating
        self.files = [open(part, "rb") for part in parts]  # noqa: SIM115 - closed by close()
        self.out = out
        self.held: list[list[bytes]] = [[] for _ in parts]
        self.held_bytes = [0] * len(parts)
        self.partial = [b""] * len(parts)
        self.last_tag = [b""] * len(parts)  # of the job's last complete line read
        self.done = [False] * len(parts)  # the job ended and its whole file is read

    def step(self, ended: list[bool]) -> None:
        """Read what the jobs have written since, and write what no running job can precede."""
        for job, handle in enumerate(self.files):
            if self.done[job] or self.held_bytes[job] >= AHEAD_BYTES:
                continue
            chunk = handle.read(AHEAD_BYTES - self.held_bytes[job])
            if not chunk:
                if ended[job]:  # before this read: nothing more will come
                    if self.partial[job]:
                        raise RuntimeError(f"replay job {job} ended in the middle of a line")
                    self.done[job] = True
                continue
            data = self.partial[job] + chunk
            complete = data.rfind(b"\n") + 1
            self.partial[job] = data[complete:]
            if complete:
                # split at newlines alone (`splitlines` also splits at \r, \x0c, \x1c ...)
                lines = data[: complete - 1].split(b"\n")
                self.held[job] += lines
                self.held_bytes[job] += complete
                self.last_tag[job] = lines[-1][:TAG_WIDTH]
        waiting = [self.last_tag[job] for job in range(len(self.files)) if not self.done[job]]
        self._write_through(min(waiting) if waiting else None)

    def finish(self) -> None:
        """Everything left, once every job has ended."""
        ended = [True] * len(self.files)
        while not all(self.done) or any(self.held):
            before = (sum(self.held_bytes), [handle.tell() for handle in self.files], self.done[:])
            self.step(ended)
            if (sum(self.held_bytes), [handle.tell() for handle in self.files], self.done) == before:
                raise RuntimeError("replay jobs wrote lines out of the order of their tags")

    def _write_through(self, bound: bytes | None) -> None:
        """Write the held lines tagged up to `bound` (None: all) in tag order."""
        ready: list[bytes] = []
        for job, held in enumerate(self.held):
            cut = len(held) if bound is None else bisect.bisect_right(held, bound, key=_tag)
            if cut:
                ready += held[:cut]
                self.held_bytes[job] -= sum(map(len, held[:cut])) + cut
                del held[:cut]
        if ready:
            ready.sort(key=_tag)  # each job's lines a sorted run: a merge, in C; stable
            self.out.write(b"\n".join([line[TAG_WIDTH:] for line in ready]) + b"\n")

    def close(self) -> None:
        for handle in self.files:
            handle.close()


_tag = operator.itemgetter(slice(TAG_WIDTH))
