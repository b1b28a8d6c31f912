"""The report's funnel (docs/kpis.md): sign-ups by month and source, first orders after
signing up with Kaplan-Meier shares, and what followed each trigger's firings, on histories
worked out by hand."""

from __future__ import annotations

import math

import orjson
import pytest

from stream.config import load_config
from stream.lifecycle.instants import DAY_US, format_rfc3339
from stream.replay.driver import Replay
from stream.report.funnel import kaplan_meier_share
from tests.helpers import at, decoded, lifecycle, placed, signed_up, write_events


def test_kaplan_meier_counts_the_customers_not_seen_that_long_for_the_days_seen():
    d = DAY_US
    # ordered on day 2; never; seen 3 days only; ordered on day 8
    waits = [(10 * d, 2 * d), (10 * d, None), (3 * d, None), (10 * d, 8 * d)]
    share, low, high = kaplan_meier_share(waits, 7 * d)
    assert share == pytest.approx(1 - 3 / 4)
    # at day 8 two are at risk (the one seen 3 days has left): S = 3/4 * 1/2
    assert kaplan_meier_share(waits, 9 * d)[0] == pytest.approx(1 - 3 / 8)
    # Greenwood on the log-log scale, written out: one event among four at risk
    variance = 1 / (4 * 3)
    spread = 1.959963984540054 * math.sqrt(variance) / abs(math.log(3 / 4))
    assert (low, high) == pytest.approx((1 - 0.75 ** math.exp(-spread), 1 - 0.75 ** math.exp(spread)))
    assert 0 < low < share < high < 1
    nobody, none_low, none_high = kaplan_meier_share([(10 * d, None)] * 20, 7 * d)
    assert (nobody, none_low) == (0.0, 0.0) and none_high == pytest.approx(1 - 0.025 ** (1 / 20))


def test_the_funnel_of_a_hand_written_history(tmp_path):
    events = [
        signed_up("ann", at(0), source="popup"),
        placed("ann", "a1", at(3)),
        signed_up("bob", at(0), source="popup"),
        signed_up("cy", at(0), source="newsletter"),
        placed("cy", "c1", at(40)),
        placed("dee", "d1", at(0)),
        signed_up("dee", at(1), source="newsletter"),  # a customer already: not a prospect
        signed_up("eve", at(35)),  # signed up in the next month, no source
    ]
    history = write_events(tmp_path / "h.jsonl", events)
    config = tmp_path / "c.toml"
    config.write_text('[triggers.welcome]\non = "signed_up"\nonly_state = ["prospect"]\nonce = true\n')
    kpis = tmp_path / "k.json"
    until = format_rfc3339(at(100))
    ran = lifecycle("report", str(history), "--config", str(config), "--until", until, "--kpis", str(kpis))
    assert ran.returncode == 0, ran.stderr
    funnel = orjson.loads(kpis.read_bytes())["funnel"]
    assert funnel["sign_ups_by_month"] == {
        "2025-03": {"newsletter": 2, "popup": 2},
        "2025-04": {"not given": 1},
    }
    first = funnel["first_order_after_sign_up"]
    assert list(first) == ["all", "popup", "newsletter", "not given"]
    everyone = first["all"]
    assert everyone["prospects"] == 4
    assert [everyone[h]["share"] for h in ("7d", "30d", "90d")] == pytest.approx([1 / 4, 1 / 4, 2 / 4])
    assert [everyone[h]["seen_whole"] for h in ("7d", "30d", "90d")] == [4, 4, 3]
    assert first["popup"]["7d"]["share"] == pytest.approx(1 / 2)
    assert first["newsletter"]["90d"]["share"] == 1.0
    [welcome] = funnel["triggers"].values()
    assert (welcome["firings"], welcome["customers"], welcome["eligible"]) == (4, 4, 4)
    assert welcome["ordered_within_7d"] == 1  # ann, on day 3
    assert welcome["share"] == pytest.approx(1 / 4)
    assert sum(welcome["firings_by_week"].values()) == 4


def test_the_intervals_at_the_edges_say_what_is_known():
    d = DAY_US
    # a hundred prospects seen one day, none ordered: nothing is known of 90 days
    assert kaplan_meier_share([(1 * d, None)] * 100, 90 * d) == (0.0, 0.0, 1.0)
    # one ordered on day 2, fifty left after a day unseen: everyone still there ordered
    share, low, high = kaplan_meier_share([(10 * d, 2 * d)] + [(1 * d, None)] * 50, 7 * d)
    assert (share, high) == (1.0, 1.0)
    assert low == pytest.approx(0.025)  # the exact lower bound for one of one


def test_a_sign_up_without_contact_arriving_after_a_later_one_is_still_the_first():
    replay = Replay(load_config(None, environ={}))
    replay.apply(decoded(signed_up("ann", at(5), email="ann@example.com", source="account")))
    replay.apply(decoded(signed_up("ann", at(1), source="popup")))
    assert replay.funnel.sign_ups["ann"].source == "popup"
