"""Experiments in the core: groups by the published formula, exposures stamped on the changes
that match, and every configuration mistake named by its key."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from stream.config import ConfigError, config_from_mapping
from stream.lifecycle import Partition, Transition
from stream.lifecycle.experiments import GoalReached, group_of
from stream.lifecycle.instants import format_rfc3339
from stream.lifecycle.transitions import Change, SegmentChange
from tests.helpers import NOW, at, decoded, placed, refunded

SEGMENTS: dict[str, Any] = {
    "segments": {"big": {"spend_over": "100 EUR", "spend_within": "365d"}},
    "classes": {"order": ["big"]},
}


def analysts_group(experiment: str, customer: str, holdout: float) -> str:
    """The contract's formula, written out as an analyst recomputing groups would."""
    h = int.from_bytes(hashlib.sha256(f"{experiment}:{customer}".encode()).digest()[:8], "big") / 2**64
    return "holdout" if h < holdout else "treatment"


def partition(experiments: dict[str, dict[str, Any]], **sections: Any) -> Partition:
    config = config_from_mapping({**sections, "experiments": experiments})
    return Partition({}, segments=config.segments, experiments=config.experiments)


def run(p: Partition, events: list[dict[str, Any]]) -> list[Change]:
    out: list[Change] = []
    for event in events:
        out += p.apply(decoded(event), NOW).changes
    return out


def test_groups_are_the_published_hash_and_the_holdout_share_is_kept():
    customers = [f"c{n}" for n in range(20_000)]
    groups = [group_of("win_back", c, 0.1) for c in customers]
    assert groups == [analysts_group("win_back", c, 0.1) for c in customers]
    held = groups.count("holdout") / len(groups)
    assert 0.09 < held < 0.11  # 20,000 draws: 3 standard deviations are 0.0064
    # another experiment draws its own groups
    other = [group_of("welcome", c, 0.1) for c in customers]
    assert sum(a != b for a, b in zip(groups, other, strict=True)) > 2_000


def test_every_change_matching_on_carries_its_group_and_no_other_change_does():
    p = partition({"welcome": {"on": "became_one_timer", "holdout": 0.5, "within": "30d"}})
    events = [placed(f"c{n}", f"o{n}", at(n)) for n in range(200)] + [placed("c1", "o1b", at(300))]
    changes = run(p, events)
    firsts = [c for c in changes if isinstance(c, Transition) and c.transition == "became_one_timer"]
    assert len(firsts) == 200
    for change in firsts:
        [entry] = change.experiments
        assert (entry.name, entry.group) == ("welcome", analysts_group("welcome", change.customer_id, 0.5))
    assert {e.group for c in firsts for e in c.experiments} == {"holdout", "treatment"}
    others = [c for c in changes if c not in firsts]
    assert others and all(c.experiments == [] for c in others)


def test_only_changes_from_starts_and_before_ends_are_exposures():
    p = partition(
        {
            "welcome": {
                "on": "became_one_timer",
                "holdout": 0.5,
                "within": "30d",
                "starts": format_rfc3339(at(10)),
                "ends": format_rfc3339(at(20)),
            }
        }
    )
    changes = run(p, [placed(f"c{day}", f"o{day}", at(day)) for day in (9, 10, 19, 20)])
    exposed = {c.customer_id for c in changes if c.experiments}
    assert exposed == {"c10", "c19"}


def test_segment_and_class_changes_are_exposures_of_experiments_on_them_in_configuration_order():
    p = partition(
        {
            "vip_mail": {"on": "class_changed:big", "holdout": 0.3, "within": "30d", "goal": "class:big"},
            "big_mail": {"on": "entered_segment:big", "holdout": 0.3, "within": "30d"},
            "welcome": {"on": "became_one_timer", "holdout": 0.3, "within": "30d"},
        },
        **SEGMENTS,
    )
    changes = run(p, [placed("c1", "o1", at(0), amount=15_000)])
    found = {
        (c.change.value if isinstance(c, SegmentChange) else c.transition): [e.name for e in c.experiments]
        for c in changes
    }
    assert found == {
        "became_one_timer": ["welcome"],
        "entered_segment": ["big_mail"],
        "class_changed": ["vip_mail"],
    }


def test_a_change_exposed_to_two_experiments_lists_both_in_configuration_order():
    p = partition(
        {
            "second": {"on": "became_one_timer", "holdout": 0.2, "within": "7d"},
            "first": {"on": "became_one_timer", "holdout": 0.2, "within": "30d"},
        }
    )
    [change] = run(p, [placed("c1", "o1", at(0))])
    assert [e.name for e in change.experiments] == ["second", "first"]


@pytest.mark.parametrize(
    ("experiment", "key", "words"),
    [
        ({"on": "became_vip", "holdout": 0.1, "within": "30d"}, "x.on", "names no change"),
        ({"on": "entered_segment:nope", "holdout": 0.1, "within": "30d"}, "x.on", "names no change"),
        ({"on": "went_inactive", "holdout": 1.0, "within": "30d"}, "x.holdout", "above 0 and below 1"),
        ({"on": "went_inactive", "holdout": 0, "within": "30d"}, "x.holdout", "above 0 and below 1"),
        ({"on": "went_inactive", "holdout": 0.1}, "x.within", "required"),
        ({"on": "went_inactive", "holdout": 0.1, "within": "soon"}, "x.within", "duration"),
        (
            {"on": "went_inactive", "holdout": 0.1, "within": "30d", "goal": "class:gold"},
            "x.goal",
            "class:<a configured class>",
        ),
        ({"on": "went_inactive", "holdout": 0.1, "within": "30d", "mail": "yes"}, "x.mail", "unknown"),
        (
            {
                "on": "went_inactive",
                "holdout": 0.1,
                "within": "30d",
                "starts": "2026-02-01T00:00:00Z",
                "ends": "2026-01-01T00:00:00Z",
            },
            "x.ends",
            "after `starts`",
        ),
        (
            {"on": "went_inactive", "holdout": 0.1, "within": "30d", "starts": "2026-02-01"},
            "x.starts",
            "",
        ),
    ],
)
def test_every_configuration_mistake_stops_at_start_naming_its_key(experiment, key, words):
    with pytest.raises(ConfigError) as raised:
        config_from_mapping({"experiments": {"x": experiment}, **SEGMENTS})
    assert f"config key `experiments.{key}`" in str(raised.value) and words in str(raised.value)


def test_a_goal_is_reached_once_within_the_window_after_the_first_exposure():
    reached: list[GoalReached] = []
    config = config_from_mapping(
        {
            **SEGMENTS,
            "experiments": {
                "welcome": {"on": "became_one_timer", "holdout": 0.5, "within": "10d"},
                "upsell": {"on": "became_one_timer", "holdout": 0.5, "within": "10d", "goal": "class:big"},
            },
        }
    )
    histories = [
        [placed("in", "i1", at(0)), placed("in", "i2", at(5)), placed("in", "i3", at(6))],
        [placed("late", "l1", at(0)), placed("late", "l2", at(10, us=1))],  # just past the window
        [placed("big", "b1", at(0)), placed("big", "b2", at(3), amount=20_000)],  # class big on day 3
    ]
    for history in histories:  # a partition each: a partition clock ahead would make them late
        p = Partition({}, segments=config.segments, experiments=config.experiments, on_goal=reached.append)
        run(p, history)
    assert reached == [
        GoalReached("welcome", analysts_group("welcome", "in", 0.5)),
        GoalReached("welcome", analysts_group("welcome", "big", 0.5)),
        GoalReached("upsell", analysts_group("upsell", "big", 0.5)),
    ]


def test_a_placement_arriving_after_its_refund_reaches_the_order_goal_too():
    reached: list[GoalReached] = []
    config = config_from_mapping(
        {"experiments": {"welcome": {"on": "became_one_timer", "holdout": 0.5, "within": "10d"}}}
    )
    p = Partition({}, experiments=config.experiments, on_goal=reached.append)
    # the refund of x2 comes first (its order known, not counted), then its placement
    run(p, [placed("x", "x1", at(0)), refunded("x", "x2", at(2), amount=100), placed("x", "x2", at(3))])
    assert reached == [GoalReached("welcome", analysts_group("welcome", "x", 0.5))]


def test_a_customer_record_forgets_experiments_no_longer_configured():
    both = {
        "old": {"on": "became_one_timer", "holdout": 0.5, "within": "10d"},
        "new": {"on": "became_repeat", "holdout": 0.5, "within": "10d"},
    }
    customers: dict = {}
    p = Partition(customers, experiments=config_from_mapping({"experiments": both}).experiments)
    run(p, [placed("x", "x1", at(0))])
    assert set(customers["x"].exposures) == {"old"}
    # the same customers under a configuration without "old": its record goes at the next change
    only_new = config_from_mapping({"experiments": {"new": both["new"]}}).experiments
    p = Partition(customers, clock_us=at(0), experiments=only_new)
    run(p, [placed("x", "x2", at(1))])
    assert set(customers["x"].exposures) == {"new"}
