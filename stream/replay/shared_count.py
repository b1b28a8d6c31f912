"""A count that forked jobs add to and their parent shows on its progress bar."""

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
