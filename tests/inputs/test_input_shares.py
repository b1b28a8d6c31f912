"""JSON-lines files cut into shares by bytes (`lifecycle replay --jobs`): every line read once,
numbered and placed as reading the files whole numbers and places it."""

from __future__ import annotations

import re
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.inputs.files import jsonl_lines, piece_lines, split_inputs
from stream.inputs.messages import MAX_EVENT_BYTES

# lines of every kind the reader tells apart: short and long, blank, CRLF, over the limit
_LINE = st.one_of(
    st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"x")),
    st.just(b""),
    st.just(b"  \t"),
    st.just(b'{"a": 1}\r'),
    st.just(b"o" * (MAX_EVENT_BYTES + 5)),
)
_FILE = st.tuples(st.lists(_LINE, max_size=12), st.booleans())  # lines, ends with a newline


def _write(directory: Path, number: int, lines: list[bytes], newline_at_end: bool) -> str:
    path = directory / f"in{number}.jsonl"
    text = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
    path.write_bytes(text)
    return str(path)


@settings(max_examples=150, deadline=None)
@given(files=st.lists(_FILE, min_size=1, max_size=3), parts=st.integers(1, 7), again=st.booleans())
def test_shares_hold_every_line_once_numbered_and_placed_as_in_the_whole_files(
    tmp_path_factory, files, parts, again
):
    directory = tmp_path_factory.mktemp("shares")
    paths = [_write(directory, n, lines, ends) for n, (lines, ends) in enumerate(files)]
    if again:  # the same file given twice is read twice
        paths.append(paths[0])

    whole = []
    base = 0
    for path in paths:
        data = Path(path).read_bytes()
        starts = [0] + [newline.end() for newline in re.finditer(b"\n", data)]
        with open(path, "rb") as handle:
            for line in jsonl_lines(handle):
                whole.append((base + starts[line.line - 1], path, line))
        base += len(data)

    shared = [
        (position, piece.path, line)
        for share in split_inputs(paths, parts)
        for piece in share
        for position, line in piece_lines(piece)
    ]
    assert shared == whole


def test_shares_are_of_about_equal_bytes_and_cover_the_files_end_to_end(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(b"x" * 1000)
    second.write_bytes(b"y" * 500)
    shares = split_inputs([str(first), str(second)], 3)
    assert [[(Path(p.path).name, p.start, p.end, p.base) for p in share] for share in shares] == [
        [("a.jsonl", 0, 500, 0)],
        [("a.jsonl", 500, 1000, 0)],
        [("b.jsonl", 0, 500, 1000)],
    ]


def test_a_job_that_fails_before_the_meeting_fails_the_jobs_waiting_there_instead_of_hanging():
    import multiprocessing

    from stream.replay.jobs import _Meeting, _Starting, _wait_for

    context = multiprocessing.get_context("fork")
    meeting = _Meeting(context, 2)
    failing = context.Process(target=_exit_with, args=(3,))
    # waits at most two minutes, failing then too: the meeting broken ends it long before
    waiting = context.Process(target=meeting.barrier.wait, args=(120,))
    started = time.monotonic()
    assert _wait_for(_Starting([failing, waiting], at_once=2), meeting, merges=[]) == [0, 1]
    assert time.monotonic() - started < 60


def test_jobs_started_a_few_at_a_time_do_not_start_after_one_failed():
    import multiprocessing

    from stream.replay.jobs import _Starting, _wait_for

    context = multiprocessing.get_context("fork")
    failing = context.Process(target=_exit_with, args=(3,))
    never = context.Process(target=_exit_with, args=(0,))
    starting = _Starting([failing, never], at_once=1)
    assert _wait_for(starting, None, merges=[]) == [0, 1]
    assert never.exitcode is None  # never started


def _exit_with(status: int) -> None:
    raise SystemExit(status)
