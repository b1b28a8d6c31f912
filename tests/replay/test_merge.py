"""`lifecycle replay --jobs`: the jobs' output files merged while the jobs still write them.
Whatever the jobs have written when the parent looks, and however a line is cut between two
writes, the merged output is their lines in tag order, each job's lines of one tag in the
order it wrote them, and nothing is written before a running job could still precede it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.replay import merge as following_merge
from stream.replay.merge import FollowingMerge
from stream.replay.run import TAG_WIDTH, line_tag


def _tagged(instant: int, position: int, text: str) -> bytes:
    return line_tag(instant, position) + text.encode() + b"\n"


@st.composite
def _job_outputs(draw: st.DrawFn) -> list[list[bytes]]:
    """Lines of up to three jobs: each input line (instant, position) belongs to one job and
    gives it one to three output lines; each job's lines in tag order."""
    count = draw(st.integers(min_value=1, max_value=3))
    instants = draw(st.lists(st.integers(min_value=0, max_value=5), max_size=30))
    outputs: list[list[tuple[int, int, bytes]]] = [[] for _ in range(count)]
    for position, instant in enumerate(instants):
        job = draw(st.integers(min_value=0, max_value=count - 1))
        for copy in range(draw(st.integers(min_value=1, max_value=3))):
            # copies in the reverse of their bytes order: only their tags order the lines
            ending = draw(st.sampled_from(["", "\r", "\x0c", "\x1c"]))  # line ends to other readers
            text = f"{3 - copy} job {job} line {position}{ending} " + "x" * draw(st.integers(0, 60))
            outputs[job].append((instant, position, _tagged(instant, position, text)))
    return [[line for *_, line in sorted(lines, key=lambda entry: entry[:2])] for lines in outputs]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(outputs=_job_outputs(), data=st.data())
def test_lines_merged_while_written_come_out_in_the_order_of_their_tags(
    tmp_path_factory, monkeypatch, outputs, data
):
    monkeypatch.setattr(following_merge, "AHEAD_BYTES", data.draw(st.sampled_from([60, 200, 1 << 20])))
    directory = tmp_path_factory.mktemp("merge")
    parts = [directory / f"{job}.transitions" for job in range(len(outputs))]
    expected = sorted((line for lines in outputs for line in lines), key=lambda line: line[:TAG_WIDTH])
    whole = b"".join(line[TAG_WIDTH:] for line in expected)
    out = io.BytesIO()
    merge = FollowingMerge(parts, out)
    writers = [open(part, "wb") for part in parts]  # noqa: SIM115 - closed below
    unwritten = [b"".join(lines) for lines in outputs]
    ended = [False] * len(outputs)
    while not all(ended):
        job = data.draw(st.sampled_from([job for job in range(len(outputs)) if not ended[job]]))
        if unwritten[job]:
            size = data.draw(st.integers(min_value=1, max_value=150))  # cuts lines anywhere
            writers[job].write(unwritten[job][:size])
            writers[job].flush()
            unwritten[job] = unwritten[job][size:]
        else:
            writers[job].close()
            ended[job] = True
        merge.step(list(ended))
        # never a line that a running job could still precede: what is out begins the whole
        assert whole.startswith(out.getvalue())
    merge.finish()
    merge.close()
    assert out.getvalue() == whole


def test_a_line_is_held_until_every_running_job_has_written_past_its_tag(tmp_path: Path):
    parts = [tmp_path / "0.transitions", tmp_path / "1.transitions"]
    out = io.BytesIO()
    merge = FollowingMerge(parts, out)
    with open(parts[0], "wb") as first, open(parts[1], "wb") as second:
        first.write(_tagged(1, 0, "a") + _tagged(5, 2, "c"))
        first.flush()
        merge.step([False, False])
        assert out.getvalue() == b""  # job 1 has written nothing: it could still write instant 0

        second.write(_tagged(3, 1, "b"))
        second.flush()
        merge.step([False, False])
        # neither job can go back before instant 3 now; job 1 may still write at 3 or 4
        assert out.getvalue() == b"a\nb\n"

        second.write(_tagged(7, 3, "d"))
        second.flush()
        merge.step([False, False])
        assert out.getvalue() == b"a\nb\nc\n"  # job 0 may still write at 5 or 6
    merge.step([True, True])
    merge.finish()
    merge.close()
    assert out.getvalue() == b"a\nb\nc\nd\n"


def test_a_job_that_ended_in_the_middle_of_a_line_is_an_error(tmp_path: Path):
    part = tmp_path / "0.transitions"
    merge = FollowingMerge([part], io.BytesIO())
    part.write_bytes(_tagged(1, 0, "whole") + line_tag(2, 1) + b"cut short")
    with pytest.raises(RuntimeError, match="job 0 ended in the middle of a line"):
        merge.finish()
    merge.close()
