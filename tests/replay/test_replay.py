"""`lifecycle replay` end to end: files in, transitions, states and rejects out, exit codes."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from stream.inputs.schemas import load_schema
from stream.lifecycle.instants import format_rfc3339
from tests.helpers import (
    at,
    cancelled,
    engaged,
    erased,
    jsonl,
    placed,
    refunded,
    run_cli,
    run_replay,
    signed_up,
    write_events,
)

HAND_WRITTEN = [
    placed(
        "ann",
        "a1",
        at(0),
        2500,
        items=[{"sku": "MUG", "qty": 1, "unit_minor": 2500}],
        channel="web",
        payment_method="card",
        coupon="WELCOME10",
    ),
    placed("bob", "b1", at(1), 1000),
    placed("cat", "c1", at(2), 900),
    cancelled("cat", "c1", at(3)),
    placed("dan", "d1", at(4), 800),
    placed("eve", "e1", at(5), 700),
    refunded("dan", "d1", at(6), 800),
    erased("eve", at(8)),
    placed("bob", "b2", at(10), 1500),
]


def test_replay_of_a_hand_written_history_matches_hand_checked_expectations(tmp_path):
    source = write_events(tmp_path / "orders.jsonl", HAND_WRITTEN)
    result = run_replay(
        str(source),
        "--until",
        format_rfc3339(at(100)),
        "--transitions",
        str(tmp_path / "t.jsonl"),
        "--states",
        str(tmp_path / "s.jsonl"),
        "--config",
        str(_one_partition(tmp_path)),
    )
    assert result.returncode == 0, result.stderr
    transitions = jsonl(tmp_path / "t.jsonl")
    seen = [(t["customer_id"], t["transition"], t["occurred_at"]) for t in transitions]
    assert seen == [
        ("ann", "became_one_timer", format_rfc3339(at(0))),
        ("bob", "became_one_timer", format_rfc3339(at(1))),
        ("cat", "became_one_timer", format_rfc3339(at(2))),
        ("cat", "one_timer_to_prospect", format_rfc3339(at(3))),
        ("dan", "became_one_timer", format_rfc3339(at(4))),
        ("eve", "became_one_timer", format_rfc3339(at(5))),
        ("dan", "one_timer_to_prospect", format_rfc3339(at(6))),
        ("eve", "one_timer_to_prospect", format_rfc3339(at(8))),
        ("bob", "became_repeat", format_rfc3339(at(10))),
        ("ann", "went_inactive", format_rfc3339(at(30))),
        ("bob", "went_at_risk", format_rfc3339(at(70))),
        ("bob", "went_inactive", format_rfc3339(at(100))),
    ]
    assert all(t["replayed"] for t in transitions)
    states = {s["customer_id"]: s for s in jsonl(tmp_path / "s.jsonl")}
    assert set(states) == {"ann", "bob", "cat", "dan"}  # eve was erased
    assert states["ann"]["state"] == "inactive" and states["ann"]["spend"] == {"EUR": 2500}
    assert states["bob"]["state"] == "inactive" and states["bob"]["order_count"] == 2
    assert states["bob"]["state_since"] == format_rfc3339(at(100))
    assert states["dan"]["state"] == "prospect" and states["dan"]["order_count"] == 0
    assert "read 9 events" in result.stderr.decode()
    summary = result.stderr.decode()
    assert "customers by state: prospect 2, one_timer 0, repeat 0, at_risk 0, inactive 2" in summary


def _one_partition(tmp_path: Path) -> Path:
    config = tmp_path / "one.toml"
    config.write_text("[kafka]\npartitions = 1\n")
    return config


def test_outputs_validate_against_the_committed_schemas(tmp_path):
    source = write_events(tmp_path / "orders.jsonl", HAND_WRITTEN, [b"not json\n"])
    result = run_replay(
        str(source),
        "--until",
        format_rfc3339(at(500)),
        "--transitions",
        str(tmp_path / "t.jsonl"),
        "--states",
        str(tmp_path / "s.jsonl"),
        "--rejects",
        str(tmp_path / "r.jsonl"),
    )
    assert result.returncode == 0
    for name, path in (("transition", "t.jsonl"), ("customer-state", "s.jsonl"), ("rejection", "r.jsonl")):
        validator = Draft202012Validator(load_schema(name))
        records = jsonl(tmp_path / path)
        assert records
        for record in records:
            validator.validate(record)


def test_bad_lines_are_rejected_with_reasons_and_the_rest_goes_on(tmp_path):
    wrong_type = dict(placed("x", "x1", at(0)), total={"amount_minor": "ten", "currency": "EUR"})
    unknown = dict(placed("y", "y1", at(0)), type="order.teleported")
    naive_time = dict(placed("z", "z1", at(0)), occurred_at="2025-03-01T10:00:00")
    future = placed("f", "f1", at(365 * 20))
    oversize = b'{"pad":"' + b"x" * (1024 * 1024 + 10) + b'"}\n'
    source = write_events(
        tmp_path / "orders.jsonl",
        [placed("ok", "o1", at(0)), wrong_type, unknown, naive_time, future],
        [b"{not json\n", oversize, orjson.dumps(placed("ok2", "o2", at(1))) + b"\n"],
    )
    result = run_replay(
        str(source), "--rejects", str(tmp_path / "r.jsonl"), "--states", str(tmp_path / "s.jsonl")
    )
    assert result.returncode == 0
    rejects = jsonl(tmp_path / "r.jsonl")
    assert [r["source"]["line"] for r in rejects] == [2, 3, 4, 5, 6, 7]
    reasons = [r["reason"] for r in rejects]
    assert "$.total.amount_minor" in reasons[0]
    assert "order.teleported" in reasons[1] or "$.type" in reasons[1]
    assert "timezone" in reasons[2]
    assert "max_future_skew" in reasons[3]
    assert reasons[4].startswith("not JSON")
    assert "limit" in reasons[5] and rejects[5]["raw_truncated"] is False
    assert len(rejects[5]["raw_text"]) <= 2048
    assert {s["customer_id"] for s in jsonl(tmp_path / "s.jsonl")} == {"ok", "ok2"}
    assert "rejected 6" in result.stderr.decode()


def test_gzip_and_stdin_inputs_give_the_same_result(tmp_path):
    raw = b"".join(orjson.dumps(e) + b"\n" for e in HAND_WRITTEN)
    (tmp_path / "h.jsonl.gz").write_bytes(gzip.compress(raw))
    a = run_replay(str(tmp_path / "h.jsonl.gz"), "--transitions", str(tmp_path / "a.jsonl"))
    b = run_replay("-", "--transitions", str(tmp_path / "b.jsonl"), stdin=raw)
    assert a.returncode == b.returncode == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k != "detected_at"} for r in rows]  # noqa: E731
    assert strip(jsonl(tmp_path / "a.jsonl")) == strip(jsonl(tmp_path / "b.jsonl"))
    assert len(jsonl(tmp_path / "a.jsonl")) == 9


def test_replaying_the_same_input_again_reproduces_its_transitions(tmp_path):
    source = tmp_path / "gen.jsonl"
    assert run_cli("generate", "--customers", "300", "-o", str(source)).returncode == 0
    runs = []
    for name in ("one", "two"):
        assert run_replay(str(source), "--transitions", str(tmp_path / name)).returncode == 0
        runs.append(
            [(t["event_id"], t["seq"], t["transition"], t["occurred_at"]) for t in jsonl(tmp_path / name)]
        )
    assert runs[0] == runs[1] and len(runs[0]) > 300


def test_csv_order_export_is_read_with_documented_columns(tmp_path):
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(
        "customer_id,order_id,occurred_at,amount,currency,channel,type\n"
        "ann,a1,2025-03-01T10:00:00Z,25.00,EUR,web,\n"
        "ann,a2,2025-03-05T10:00:00+01:00,12.5,EUR,app,\n"
        "ann,a2,2025-03-06T10:00:00Z,12.50,EUR,,order.refunded\n"
        "bob,b1,2025-03-02T10:00:00Z,1000,JPY,web,\n"
        "bad,b1,2025-03-02T10:00:00Z,ten,EUR,web,\n"
    )
    result = run_replay(
        str(csv_file),
        "--format",
        "csv",
        "--states",
        str(tmp_path / "s.jsonl"),
        "--rejects",
        str(tmp_path / "r.jsonl"),
        "--transitions",
        str(tmp_path / "t.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    states = {s["customer_id"]: s for s in jsonl(tmp_path / "s.jsonl")}
    assert states["ann"]["spend"] == {"EUR": 2500} and states["ann"]["state"] == "one_timer"
    assert states["bob"]["spend"] == {"JPY": 1000}
    [reject] = jsonl(tmp_path / "r.jsonl")
    assert reject["source"]["line"] == 6 and "ten" in reject["reason"]
    assert [t["transition"] for t in jsonl(tmp_path / "t.jsonl") if t["customer_id"] == "ann"] == [
        "became_one_timer",
        "became_repeat",
        "repeat_to_one_timer",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "missing.jsonl: no such file"),
        (["{src}", "--until", "yesterday"], "--until"),
        (["{src}", "--format", "xml"], "invalid choice"),
        (["{src}", "--config", "{bad_config}"], "config key `policy.one_timer_window`"),
        (["{src}", "--transitions", "/nonexistent/dir/t.jsonl"], "--transitions"),
    ],
)
def test_unusable_arguments_exit_2_with_one_line(tmp_path, args, message):
    src = write_events(tmp_path / "o.jsonl", HAND_WRITTEN)
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\none_timer_window = "thirty"\n')
    result = run_replay(*[a.format(src=src, bad_config=bad) for a in args])
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def _states(path: Path) -> dict[str, tuple]:
    return {s["customer_id"]: (s["state"], s["order_count"], s["seq"]) for s in jsonl(path)}


def test_a_newest_first_export_replays_as_if_it_were_in_time_order(tmp_path):
    in_order = write_events(tmp_path / "in-order.jsonl", HAND_WRITTEN)
    newest_first = write_events(tmp_path / "newest-first.jsonl", list(reversed(HAND_WRITTEN)))
    until = format_rfc3339(at(500))
    for source in (in_order, newest_first):
        result = run_replay(str(source), "--until", until, "--states", str(tmp_path / f"{source.stem}.s"))
        assert result.returncode == 0, result.stderr
        assert ", late 0," in result.stderr.decode()
    assert _states(tmp_path / "newest-first.s") == _states(tmp_path / "in-order.s")
    # the order the file had: everything after the first line is late
    result = run_replay(
        str(newest_first), "--arrival-order", "--until", until, "--states", str(tmp_path / "arrival.s")
    )
    assert ", late 0," not in result.stderr.decode()
    assert _states(tmp_path / "arrival.s") != _states(tmp_path / "in-order.s")


def test_segment_changes_go_to_their_own_file_and_validate_against_the_schema(tmp_path):
    config = tmp_path / "segments.toml"
    config.write_text('[segments.buyers]\norders_over = 0\n[segments.big]\nspend_over = "20 EUR"\n')
    source = write_events(tmp_path / "orders.jsonl", HAND_WRITTEN)
    result = run_replay(
        str(source),
        "--config",
        str(config),
        "--segment-changes",
        str(tmp_path / "c.jsonl"),
        "--transitions",
        str(tmp_path / "t.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    changes = jsonl(tmp_path / "c.jsonl")
    validator = Draft202012Validator(load_schema("segment-change"))
    for change in changes:
        validator.validate(change)
    assert all("change" not in t for t in jsonl(tmp_path / "t.jsonl"))
    bob = [(c["change"], c["segment"]) for c in changes if c["customer_id"] == "bob"]
    assert bob == [("entered_segment", "buyers"), ("entered_segment", "big")]  # 10.00, then 25.00 EUR


def test_trigger_firings_go_to_their_own_file_and_validate_against_the_schema(tmp_path):
    config = tmp_path / "triggers.toml"
    config.write_text(
        '[triggers.cart_abandoned]\non = "engaged:added_to_cart"\nafter = "1h"\nunless = ["order"]\n'
    )
    items = [{"sku": "S1", "category": "shoes", "qty": 1, "unit_minor": 100}]
    events = [
        signed_up("ann", at(0), email="ann@example.com"),
        engaged("ann", "added_to_cart", at(0, us=1), items=items, cart_id="k1"),
        engaged("bob", "added_to_cart", at(0)),
        placed("bob", "b1", at(0, us=5)),
    ]
    source = write_events(tmp_path / "events.jsonl", events)
    out = {kind: tmp_path / f"{kind}.jsonl" for kind in ("triggers", "transitions")}
    result = run_replay(
        str(source),
        "--config",
        str(config),
        "--until",
        format_rfc3339(at(1)),
        *("--triggers", str(out["triggers"]), "--transitions", str(out["transitions"])),
    )
    assert result.returncode == 0, result.stderr
    [firing] = jsonl(out["triggers"])
    Draft202012Validator(load_schema("trigger-fired")).validate(firing)
    assert (firing["trigger"], firing["customer_id"], firing["cart_id"]) == ("cart_abandoned", "ann", "k1")
    assert firing["customer"]["email"] == "ann@example.com"
    assert [t["customer_id"] for t in jsonl(out["transitions"])] == ["bob"]
    assert "trigger firings: cart_abandoned 1" in result.stderr.decode()


def test_a_csv_whose_header_lacks_required_columns_stops_with_exit_2_naming_them(tmp_path):
    semicolons = tmp_path / "orders.csv"
    semicolons.write_text(
        "customer_id;order_id;occurred_at;amount;currency\nann;1;2025-01-01T00:00:00Z;10;EUR\n"
    )
    result = run_replay(str(semicolons), "--format", "csv")
    assert result.returncode == 2
    message = result.stderr.decode().strip()
    assert message.startswith(f"error: input {semicolons}: the CSV header lacks the column(s) customer_id,")
    assert "`;`-separated" in message


def test_a_shops_own_csv_layout_is_read_with_columns_delimiter_decimal_comma_and_zone(tmp_path):
    export = tmp_path / "bestellungen.csv"
    export.write_text(
        "Kunde;Bestellung;Datum;Betrag;Waehrung\n"
        "k1;B-1;2025-01-10 09:00:00;1.234,50;eur\n"
        "k1;B-2;2025-01-20 09:00:00;10,00;EUR\n"
        "k2;B-3;2025-01-21 09:00:00;zehn;EUR\n"
    )
    result = run_replay(
        str(export),
        "--format",
        "csv",
        "--columns",
        "customer_id=Kunde,order_id=Bestellung,occurred_at=Datum,amount=Betrag,currency=Waehrung",
        "--delimiter",
        ";",
        "--decimal-comma",
        "--timezone",
        "Europe/Berlin",
        "--transitions",
        str(tmp_path / "t.jsonl"),
        "--states",
        str(tmp_path / "s.jsonl"),
        "--rejects",
        str(tmp_path / "r.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    [k1] = jsonl(tmp_path / "s.jsonl")
    assert (k1["customer_id"], k1["order_count"], k1["spend"]) == ("k1", 2, {"EUR": 124450})
    assert k1["first_order_at"] == "2025-01-10T08:00:00Z"  # 09:00 in Berlin, winter time
    [reject] = jsonl(tmp_path / "r.jsonl")
    assert reject["reason"] == "line 4: column `Betrag`: amount `zehn` is not a decimal number"
    assert reject["raw_text"] == "k2;B-3;2025-01-21 09:00:00;zehn;EUR"


def test_a_time_without_a_zone_and_no_timezone_given_is_rejected_naming_the_column(tmp_path):
    export = tmp_path / "orders.csv"
    export.write_text(
        "customer_id,order_id,occurred_at,amount,currency\nk1,1,2025-01-10 09:00:00,10.00,EUR\n"
    )
    result = run_replay(str(export), "--format", "csv", "--rejects", str(tmp_path / "r.jsonl"))
    assert result.returncode == 0
    [reject] = jsonl(tmp_path / "r.jsonl")
    assert reject["reason"] == (
        "line 2: column `occurred_at`: the time `2025-01-10 09:00:00` has no zone; "
        "add one, or give --timezone"
    )


def test_replay_in_jobs_writes_the_same_lines_in_the_same_order_as_one_process(tmp_path):
    history = tmp_path / "history.jsonl"
    generated = run_cli(
        "generate", "--customers", "400", "--seed", "8", "--engagement", "4", "-o", str(history)
    )
    assert generated.returncode == 0
    with open(history, "ab") as extra:
        extra.write(b"not json\n" + orjson.dumps(placed("zed", "z1", at(100))) + b"\n")
        # rejected, whichever job reads them: a customer id that is not a string, no instant
        extra.write(orjson.dumps({**placed("x", "x1", at(101)), "customer_id": 7}) + b"\n")
        no_instant = placed("yan", "y1", at(102))
        del no_instant["occurred_at"]
        extra.write(orjson.dumps(no_instant) + b"\n")
    config = tmp_path / "c.toml"
    config.write_text(
        '[kafka]\npartitions = 5\n[segments.two]\norders_over = 1\norders_within = "90d"\n'
        '[triggers.cart]\non = "engaged:added_to_cart"\nafter = "1h"\nunless = ["order"]\n'
        '[triggers.welcome]\non = "signed_up"\nonly_state = ["prospect"]\nonce = true\n'
    )
    outputs = {jobs: _replayed_in_jobs(tmp_path, [history], config, jobs) for jobs in ("1", "3")}
    assert outputs["3"] == outputs["1"]
    assert all(outputs["1"][0])  # every kind of output has lines
    # a memory budget too small for one process: the partitions one after another, the same
    records, summary = _replayed_in_jobs(tmp_path, [history], config, "1", "--memory", "1M")
    assert records == outputs["1"][0]
    assert summary[0].startswith("replay: replaying in 5 groups of partitions, 1 at a time")
    assert summary[1:] == outputs["1"][1]
    # gzip is not cut into shares: every job reads every line and keeps its own
    packed = tmp_path / "history.jsonl.gz"
    packed.write_bytes(gzip.compress(history.read_bytes()))
    from_gzip = {jobs: _replayed_in_jobs(tmp_path, [packed], config, jobs) for jobs in ("1", "3")}
    assert from_gzip["3"] == from_gzip["1"]
    assert from_gzip["1"][1] == outputs["1"][1]  # the same summary


def test_replay_in_jobs_places_lines_across_the_shares_of_the_input_as_one_process(tmp_path):
    """Jobs read the input in shares of about equal bytes: lines without an instant where a
    share starts, lines older than lines of an earlier share, and two files end to end are
    placed and counted as one process places and counts them."""
    dated = [placed(f"c{n}", f"d{n}", at(n, us=n)) for n in range(40)]
    older = [placed(f"c{n}", f"e{n}", at(n / 2 + 5)) for n in range(40)]  # most older than dated's last
    undated = [
        orjson.dumps({"type": "order.placed", "customer_id": f"c{n}", "order_id": f"u{n}"})
        for n in range(120)
    ]
    first = write_events(tmp_path / "first.jsonl", dated, [line + b"\n" for line in undated[:80]])
    second = tmp_path / "second.jsonl"
    second.write_bytes(
        b"".join(line + b"\n" for line in undated[80:]) + b"".join(orjson.dumps(e) + b"\n" for e in older)
    )
    config = tmp_path / "c.toml"
    config.write_text("[kafka]\npartitions = 5\n")
    outputs = {jobs: _replayed_in_jobs(tmp_path, [first, second], config, jobs) for jobs in ("1", "3")}
    assert outputs["3"] == outputs["1"]
    rejects = outputs["1"][0][3]
    assert len(rejects) == 120 and rejects[0]["source"]["line"] == 41
    summary = " ".join(outputs["1"][1])
    assert "came after a later one" in summary and "of 200 lines" in summary
    # in the files' order, every job reads every line and keeps its own
    in_arrival_order = {
        jobs: _replayed_in_jobs(tmp_path, [first, second], config, jobs, "--arrival-order")
        for jobs in ("1", "3")
    }
    assert in_arrival_order["3"] == in_arrival_order["1"] != outputs["1"]


def _replayed_in_jobs(
    tmp_path: Path, inputs: list[Path], config: Path, jobs: str, *options: str
) -> tuple[list, list[str]]:
    """The outputs (`detected_at` aside) and the summary lines (times aside) of a replay."""
    out = tmp_path / f"jobs-{jobs}{''.join(options)}"
    result = run_replay(
        *map(str, inputs),
        *options,
        "--config",
        str(config),
        "--jobs",
        jobs,
        "--until",
        "2027-01-01T00:00:00Z",
        *("--transitions", f"{out}.t", "--segment-changes", f"{out}.c"),
        *("--states", f"{out}.s", "--rejects", f"{out}.r", "--triggers", f"{out}.g"),
    )
    assert result.returncode == 0, result.stderr
    records = [
        [{k: v for k, v in r.items() if k != "detected_at"} for r in jsonl(Path(f"{out}.{kind}"))]
        for kind in "tcsrg"
    ]
    summary = [
        line.split(" in ")[0] + line.split(")")[-1] if line.startswith("read") else line
        for line in result.stderr.decode().splitlines()
    ]
    return records, summary


def test_replay_in_jobs_of_a_named_pipe_reads_it_once_in_one_process(tmp_path):
    history = write_events(tmp_path / "h.jsonl", [placed(f"c{n}", f"o{n}", at(n)) for n in range(50)])
    pipe = tmp_path / "orders.pipe"
    os.mkfifo(pipe)
    # a daemon: a replay that never opened the pipe leaves it blocked, not the test run
    writer = threading.Thread(target=lambda: pipe.write_bytes(history.read_bytes()), daemon=True)
    writer.start()
    result = run_replay(str(pipe), "--jobs", "3", "--states", str(tmp_path / "s.jsonl"))
    assert result.returncode == 0, result.stderr
    assert sorted(r["customer_id"] for r in jsonl(tmp_path / "s.jsonl")) == sorted(f"c{n}" for n in range(50))


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_replay_on_a_terminal_shows_its_progress_through_the_whole_input(tmp_path, jobs):
    import fcntl
    import pty
    import re
    import struct
    import termios

    history = tmp_path / "history.jsonl"
    assert run_cli("generate", "--customers", "700", "--seed", "3", "-o", str(history)).returncode == 0
    terminal, stderr = pty.openpty()
    # a terminal 120 columns wide: one of no size shows a bar of no width
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    replay = subprocess.Popen(
        [sys.executable, "-m", "stream", "replay", str(history), "--jobs", jobs],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    os.close(stderr)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 1 << 16)
        except OSError:  # EIO: the replay closed the terminal's other end
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    assert replay.wait() == 0
    bars = [part for part in re.split(rb"[\r\n]", shown) if part.startswith(b"replay:")]
    assert bars, shown
    done, total = re.search(rb"\| *(\S+)/(\S+) \[", bars[-1]).groups()
    assert b"100%" in bars[-1] and done == total, bars[-1]
    assert history.stat().st_size > 1 << 20  # more than one of the jobs' counting steps
