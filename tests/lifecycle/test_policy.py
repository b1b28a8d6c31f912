"""The state table and the transition names of docs/lifecycle.md, row by row, boundary by boundary."""

import pytest

from stream.lifecycle import Policy, State, next_deadline, state_at, transition_name
from stream.lifecycle.instants import DAY_US

P = Policy()
FIRST = 1_000 * DAY_US
US = 1


@pytest.mark.parametrize(
    ("count", "first", "last", "at", "expected"),
    [
        (0, 0, 0, FIRST, State.PROSPECT),
        (1, FIRST, FIRST, FIRST, State.ONE_TIMER),
        (1, FIRST, FIRST, FIRST + 30 * DAY_US - US, State.ONE_TIMER),
        (1, FIRST, FIRST, FIRST + 30 * DAY_US, State.INACTIVE),
        (1, FIRST, FIRST, FIRST + 365 * DAY_US - US, State.INACTIVE),
        (1, FIRST, FIRST, FIRST + 365 * DAY_US, State.CHURNED),
        (2, FIRST, FIRST + DAY_US, FIRST + DAY_US, State.REPEAT),
        (2, FIRST, FIRST, FIRST + 60 * DAY_US - US, State.REPEAT),
        (2, FIRST, FIRST, FIRST + 60 * DAY_US, State.AT_RISK),
        (2, FIRST, FIRST, FIRST + 90 * DAY_US - US, State.AT_RISK),
        (2, FIRST, FIRST, FIRST + 90 * DAY_US, State.INACTIVE),
        (5, FIRST, FIRST, FIRST + 365 * DAY_US - US, State.INACTIVE),
        (5, FIRST, FIRST, FIRST + 365 * DAY_US, State.CHURNED),
    ],
)
def test_state_table_rows_and_their_exact_boundaries(count, first, last, at, expected):
    assert state_at(P, count, first, last, at) is expected


def test_repeat_customer_is_judged_by_last_order_not_first():
    first, last = FIRST, FIRST + 200 * DAY_US
    assert state_at(P, 2, first, last, last + 59 * DAY_US) is State.REPEAT


@pytest.mark.parametrize(
    ("count", "at_offset_days", "deadline_offset_days"),
    [(1, 0, 30), (1, 30, 365), (1, 365, None), (2, 0, 60), (2, 60, 90), (2, 90, 365), (3, 365, None)],
)
def test_next_deadline_is_the_next_instant_the_state_changes(count, at_offset_days, deadline_offset_days):
    at = FIRST + at_offset_days * DAY_US
    due = next_deadline(P, count, FIRST, FIRST, at)
    if deadline_offset_days is None:
        assert due is None
        return
    assert due == FIRST + deadline_offset_days * DAY_US
    assert state_at(P, count, FIRST, FIRST, due - 1) is state_at(P, count, FIRST, FIRST, at)
    assert state_at(P, count, FIRST, FIRST, due) is not state_at(P, count, FIRST, FIRST, at)


def test_prospect_has_no_deadline():
    assert next_deadline(P, 0, 0, 0, FIRST) is None


@pytest.mark.parametrize(
    ("from_state", "to_state", "name"),
    [
        (State.PROSPECT, State.ONE_TIMER, "became_one_timer"),
        (State.ONE_TIMER, State.REPEAT, "became_repeat"),
        (State.AT_RISK, State.REPEAT, "recovered"),
        (State.INACTIVE, State.REPEAT, "reactivated"),
        (State.INACTIVE, State.ONE_TIMER, "reactivated"),
        (State.CHURNED, State.REPEAT, "reactivated"),
        (State.CHURNED, State.ONE_TIMER, "reactivated"),
        (State.REPEAT, State.AT_RISK, "went_at_risk"),
        (State.ONE_TIMER, State.INACTIVE, "went_inactive"),
        (State.REPEAT, State.INACTIVE, "went_inactive"),
        (State.AT_RISK, State.INACTIVE, "went_inactive"),
        (State.INACTIVE, State.CHURNED, "churned"),
        (State.ONE_TIMER, State.PROSPECT, "one_timer_to_prospect"),
        (State.REPEAT, State.ONE_TIMER, "repeat_to_one_timer"),
        (State.PROSPECT, State.INACTIVE, "prospect_to_inactive"),
    ],
)
def test_transition_names_by_from_and_to(from_state, to_state, name):
    assert transition_name(from_state, to_state) == name


def test_contradictory_policy_is_reported_by_key():
    bad = Policy(at_risk_after=100 * DAY_US, inactive_after=90 * DAY_US)
    assert [key for key, _ in bad.problems()] == ["at_risk_after"]
    assert Policy().problems() == []
