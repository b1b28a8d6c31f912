"""Holdout experiments: which changes are exposures, and which group each customer is in.

An experiment holds out a random share of the customers an action is for (docs/
experiments.md). A customer's group is a pure function of the experiment's name and the
customer id, so an analyst can recompute every group from the published formula, and a
change that matches an experiment carries the customer's group in its `experiments` field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import msgspec

from .instants import to_us

if TYPE_CHECKING:
    from .customer import CustomerState
    from .transitions import Change

Group = Literal["treatment", "holdout"]


class ExperimentEntry(msgspec.Struct, frozen=True, gc=False):
    """One experiment a change is an exposure of, and the customer's group in it."""

    name: str
    group: Group


def group_of(experiment: str, customer_id: str, holdout: float) -> Group:
    """The customer's group: `holdout` when sha256("<experiment>:<customer>")'s first 8 bytes,
    as a big-endian fraction of 2^64, fall below the holdout share."""
    digest = hashlib.sha256(f"{experiment}:{customer_id}".encode()).digest()
    share = int.from_bytes(digest[:8], "big") / 2**64
    return "holdout" if share < holdout else "treatment"


@dataclass(frozen=True)
class Experiment:
    name: str
    # what the action answers: a transition name, "entered_segment:<segment>" or
    # "class_changed:<class>"
    on: str
    holdout: float
    # "order" (a counted order) or "class:<name>" (a class_changed to that class)
    goal: str
    within_us: int
    starts_us: int | None = None  # changes at or after (event time)
    ends_us: int | None = None  # changes before

    def exposes(self, on: str, at_us: int) -> bool:
        """True for a change named `on` at `at_us`: an exposure."""
        if on != self.on:
            return False
        started = self.starts_us is None or self.starts_us <= at_us
        return started and (self.ends_us is None or at_us < self.ends_us)

    @property
    def goal_class(self) -> str | None:
        """The class the goal is reaching, None for an order goal."""
        return self.goal.removeprefix("class:") if self.goal.startswith("class:") else None


@dataclass(frozen=True)
class Experiments:
    """The configured experiments, in configuration order."""

    experiments: tuple[Experiment, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.experiments)

    def entries(self, on: str, customer_id: str, at_us: int) -> list[ExperimentEntry]:
        """What a change named `on` of `customer_id` at `at_us` carries: one entry per
        experiment it is an exposure of."""
        return [
            ExperimentEntry(e.name, group_of(e.name, customer_id, e.holdout))
            for e in self.experiments
            if e.exposes(on, at_us)
        ]

    def exposed(
        self, customer: CustomerState, changes: list[Change], at_us: int, on_goal: OnGoal | None
    ) -> list[Change]:
        """`changes` of `customer` made at `at_us`, stamped (`stamp`); the customer's first
        exposure in each experiment is kept (for the goals), and a class goal these changes
        reach is told to `on_goal`."""
        if not self.experiments:
            return changes
        if customer.exposures is not None:
            self._forget_removed(customer)
        stamped = self.stamp(changes, at_us)
        for change in stamped:
            for entry in change.experiments:
                exposures = customer.exposures if customer.exposures is not None else {}
                exposures.setdefault(entry.name, at_us)
                customer.exposures = exposures
            to_class = getattr(change, "to_class", None)
            if to_class is not None and on_goal is not None:
                self._goals(customer, at_us, _reaching_class(to_class), on_goal)
        return stamped

    def _forget_removed(self, customer: CustomerState) -> None:
        """Drop what the customer's record keeps of experiments no longer configured."""
        names = {e.name for e in self.experiments}
        exposures = customer.exposures or {}
        if not names.issuperset(exposures):
            customer.exposures = {name: at for name, at in exposures.items() if name in names} or None
            customer.goals = [name for name in customer.goals or () if name in names] or None

    def ordered(self, customer: CustomerState, placed_at: int, on_goal: OnGoal | None) -> None:
        """A counted order placed at `placed_at`: the order goals it reaches."""
        if on_goal is not None and customer.exposures:
            self._goals(customer, placed_at, lambda e: e.goal_class is None, on_goal)

    def _goals(
        self, customer: CustomerState, at_us: int, kind: Callable[[Experiment], bool], on_goal: OnGoal
    ) -> None:
        exposures = customer.exposures or {}
        for e in self.experiments:
            first = exposures.get(e.name)
            if first is None or not kind(e) or (customer.goals and e.name in customer.goals):
                continue
            if first < at_us <= first + e.within_us:
                customer.goals = [*(customer.goals or ()), e.name]
                on_goal(GoalReached(e.name, group_of(e.name, customer.customer_id, e.holdout)))

    def stamp(self, changes: list[Change], at_us: int) -> list[Change]:
        """`changes` made at `at_us`, each carrying the experiments it is an exposure of."""
        if not self.experiments:
            return changes
        stamped: list[Change] = []
        for change in changes:
            entries = self.entries(change.exposure_name(), change.customer_id, at_us)
            stamped.append(msgspec.structs.replace(change, experiments=entries) if entries else change)
        return stamped


class GoalReached(NamedTuple):
    """A customer reached an experiment's goal within its window after their first exposure."""

    experiment: str
    group: Group


OnGoal = Callable[[GoalReached], None]


@dataclass
class Exposure:
    """A customer's first exposure in an experiment, and when a class goal was reached."""

    at_us: int
    group: Group
    goal_reached_us: int | None = None  # a class goal: the first class_changed to it in the window


class ExposureLog:
    """Every customer's first exposure in each experiment, from the changes as they are made
    (a replay's, in time order per customer), for the report to measure."""

    def __init__(self, experiments: Experiments) -> None:
        self.experiments = experiments
        self.first: dict[str, dict[str, Exposure]] = {e.name: {} for e in experiments.experiments}
        self._class_goals = [e for e in experiments.experiments if e.goal_class is not None]

    def note(self, changes: list[Change]) -> None:
        for change in changes:
            if change.experiments:
                at = to_us(change.occurred_at)
                for entry in change.experiments:
                    self.first[entry.name].setdefault(change.customer_id, Exposure(at, entry.group))
            to_class = getattr(change, "to_class", None)
            if to_class is not None and self._class_goals:
                self._note_class(change.customer_id, to_class, to_us(change.occurred_at))

    def _note_class(self, customer_id: str, to_class: str, at_us: int) -> None:
        for experiment in self._class_goals:
            exposure = self.first[experiment.name].get(customer_id)
            if (
                experiment.goal_class == to_class
                and exposure is not None
                and exposure.goal_reached_us is None
                and exposure.at_us < at_us <= exposure.at_us + experiment.within_us
            ):
                exposure.goal_reached_us = at_us

    def add(self, other: ExposureLog) -> None:
        """Another replay's exposures, of other customers."""
        for name, exposures in other.first.items():
            self.first[name].update(exposures)

    def forget(self, customer_id: str) -> None:
        """An erased customer leaves every experiment's measure."""
        for exposures in self.first.values():
            exposures.pop(customer_id, None)


def _reaching_class(klass: str) -> Callable[[Experiment], bool]:
    return lambda experiment: experiment.goal_class == klass


def held_out(entries: list[ExperimentEntry]) -> bool:
    """True when any experiment holds the change out: it is kept off the per-name topics."""
    return any(entry.group == "holdout" for entry in entries)
