"""The count forked jobs add to for their parent's progress bar."""

from __future__ import annotations

import multiprocessing

from stream.replay.shared_count import SharedCount


class Bar:
    def __init__(self) -> None:
        self.n = 0

    def update(self, count: int) -> None:
        self.n += count


def _count(shared: SharedCount, counts: list[int]) -> None:
    for count in counts:
        shared.update(count)
    shared.close()


def test_the_parent_sees_every_job_s_count_once_the_jobs_have_closed() -> None:
    context = multiprocessing.get_context("fork")
    shared = SharedCount(context, flush_at=100)
    counts = [[30, 90, 1, 7], [250], [3]]  # flushed mid-way, at once, only by close
    jobs = [context.Process(target=_count, args=(shared, job_counts)) for job_counts in counts]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    bar = Bar()
    shared.show(bar)
    shared.show(bar)  # showing twice adds nothing
    assert bar.n == sum(map(sum, counts))


def test_a_job_keeps_its_count_until_it_has_gathered_enough() -> None:
    shared = SharedCount(multiprocessing.get_context("fork"), flush_at=100)
    bar = Bar()
    shared.update(99)
    shared.show(bar)
    assert bar.n == 0
    shared.update(1)
    shared.show(bar)
    assert bar.n == 100
    shared.show(None)  # no terminal, no bar
