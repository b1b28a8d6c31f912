"""Configuration: a TOML file, then LIFECYCLE_* environment variables, over sane defaults.

Every problem stops the program at start with a message that names the key, e.g.
"config key `policy.one_timer_window`: expected a duration like `30d`, got `thirty`".
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..lifecycle import Policy, PolicyBook, TimeRules
from ..lifecycle.customer import Scorer
from ..lifecycle.experiments import Experiments
from ..lifecycle.folding import DEFAULT_ORDERS_KEPT, DEFAULT_REFUNDS_KEPT
from ..lifecycle.instants import DAY_US, MINUTE_US, SECOND_US
from ..lifecycle.segments import SegmentRules
from ..lifecycle.triggers import TriggerRules
from . import values as read
from .experiments import experiments_of
from .segments import SegmentConfigError, check_model_conditions, segment_rules
from .triggers import triggers_of
from .values import parse_duration as parse_duration  # of this package's API

ENV_PREFIX = "LIFECYCLE_"


class ConfigError(ValueError):
    """A configuration the program cannot run with; the message names the key."""


@dataclass(frozen=True)
class PolicySettings:
    one_timer_window: int = read.setting(read.duration, 30 * DAY_US)
    at_risk_after: int = read.setting(read.duration, 60 * DAY_US)
    inactive_after: int = read.setting(read.duration, 90 * DAY_US)
    churned_after: int = read.setting(read.duration, 365 * DAY_US)


@dataclass(frozen=True)
class TimeSettings:
    stale_after: int = read.setting(read.duration, DAY_US)
    max_future_skew: int = read.setting(read.duration, 5 * MINUTE_US)
    # a partition whose share of late events, per 1,000, is above this says so in the log
    late_share_warning: float = read.setting(read.share, 0.2)
    tick_interval: int = read.setting(read.duration, SECOND_US)
    tick_delay: int = read.setting(read.duration, SECOND_US)
    ticks: bool = read.setting(read.flag, True)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = read.setting(read.text, "127.0.0.1:9092")
    partitions: int = read.setting(read.positive_int, 6)
    security_protocol: str = read.setting(
        read.choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"), "PLAINTEXT"
    )
    sasl_mechanism: str = read.setting(read.choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), "PLAIN")
    sasl_username: str = read.setting(read.text, "")
    sasl_password: str = read.setting(read.text, "")
    ssl_cafile: str = read.setting(read.existing_file, "")
    ssl_certfile: str = read.setting(read.existing_file, "")
    ssl_keyfile: str = read.setting(read.existing_file, "")


@dataclass(frozen=True)
class TopicSettings:
    orders: str = read.setting(read.text, "orders")
    transitions: str = read.setting(read.text, "lifecycle.transitions")
    customer_state: str = read.setting(read.text, "lifecycle.customer-state")
    dead_letters: str = read.setting(read.text, "lifecycle.dead-letters")
    ticks: str = read.setting(read.text, "lifecycle.ticks")
    segment_changes: str = read.setting(read.text, "lifecycle.segment-changes")
    triggers: str = read.setting(read.text, "lifecycle.triggers")


@dataclass(frozen=True)
class WorkerSettings:
    app_id: str = read.setting(read.text, "lifecycle")
    store: str = read.setting(read.choice("rocksdb", "memory"), "rocksdb")
    data_dir: str = read.setting(read.text, "./var/worker")
    web_port: int = read.setting(read.port, 6066)
    web_host: str = read.setting(read.text, "127.0.0.1")
    # Kafka static membership: a restarted worker gets its partitions back at once instead
    # of after the dead member's session (60 s); a stopped one does not leave the group.
    static_membership: bool = read.setting(read.flag, False)
    # other workers keep a copy of each partition's tables, read from the changelog as it is
    # written: the worker that takes a dead one's partitions over has (nearly) nothing to
    # restore. 0: none, every take-over restores the whole changelog partition.
    standby_replicas: int = read.setting(read.whole_number, 1)
    # how long a worker that stopped answering (SIGKILL, a lost machine) keeps its partitions
    # before the others take them over
    session_timeout: int = read.setting(read.session_timeout, 60 * SECOND_US)
    # faust's own per-message metrics (faust_*) on /metrics; they cost about a tenth of the
    # worker's time, and the dashboards and alerts use only the lifecycle_* ones
    faust_metrics: bool = read.setting(read.flag, False)
    # customers kept decoded in memory after they were written, over all partitions: a
    # customer read again soon skips the store's read and the decoding. A few KB each (more
    # for customers with many orders); 0: every read goes to the store
    decoded_customers: int = read.setting(read.whole_number, 10_000)
    # at_least_once: a crash sends again what followed the last commit, and subscribers see
    # those messages twice (same ids); exactly_once: what a message causes leaves in one Kafka
    # transaction with its offset, and read_committed readers see each message once
    # (docs/exactly-once.md)
    processing_guarantee: str = read.setting(read.choice("at_least_once", "exactly_once"), "at_least_once")
    # exactly_once: how often each partition's transaction is committed; a read_committed
    # reader sees a transaction's messages at its commit, not before
    transaction_interval: int = read.setting(read.transaction_interval, 100_000)

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"


@dataclass(frozen=True)
class PrivacySettings:
    # email and marketing consent from order events, kept in state and sent with snapshots
    # and state records; false: dropped on arrival, so no output carries them
    contact_data: bool = read.setting(read.flag, True)


def _model_file(value: object) -> str:
    """A model file that loads (`lifecycle model fit`'s output), checked at start."""
    path = read.existing_file(value)
    from ..model.scores import ModelFileError, load_model  # numpy and scipy, only when set

    try:
        load_model(path)
    except ModelFileError as error:
        raise ValueError(str(error)) from None
    return path


def _loaded_model(path: str) -> Any:
    """The model file (checked when the config was read); loaded once per process."""
    from ..model.scores import load_model

    if path not in _models:
        _models[path] = load_model(path)
    return _models[path]


_models: dict[str, Any] = {}


def _orders_kept(value: object) -> int:
    kept = read.positive_int(value)
    if kept < 10:
        raise ValueError(f"expected 10 or more (orders a customer keeps in detail), got `{kept}`")
    return kept


@dataclass(frozen=True)
class LimitSettings:
    # orders a customer keeps in detail; beyond them (and a tenth more), the oldest are folded
    # into totals (docs/lifecycle.md, "Customers with many orders")
    orders_kept: int = read.setting(_orders_kept, DEFAULT_ORDERS_KEPT)
    # refunds an order keeps (each by event id, so one sent again counts once); one more is
    # rejected
    refunds_per_order: int = read.setting(read.positive_int, DEFAULT_REFUNDS_KEPT)


@dataclass(frozen=True)
class ModelSettings:
    # model.json from `lifecycle model fit`: its scores in every snapshot and state record
    path: str | None = read.setting(_model_file, None)


@dataclass(frozen=True)
class Config:
    policy: PolicySettings = field(default_factory=PolicySettings)
    stores: dict[str, PolicySettings] = field(default_factory=dict)
    time: TimeSettings = field(default_factory=TimeSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    segments: SegmentRules = field(default_factory=SegmentRules)
    experiments: Experiments = field(default_factory=Experiments)
    triggers: TriggerRules = field(default_factory=TriggerRules)

    def policy_book(self) -> PolicyBook:
        return PolicyBook(
            default=_policy(self.policy),
            stores={store: _policy(p) for store, p in self.stores.items()},
        )

    def time_rules(self) -> TimeRules:
        return TimeRules(stale_after=self.time.stale_after, max_future_skew=self.time.max_future_skew)

    def scorer(self) -> Scorer | None:
        """The configured model's scores of a customer at an instant; None without a model."""
        return None if self.model.path is None else _loaded_model(self.model.path).scores


_SECTIONS = {
    "policy": PolicySettings,
    "time": TimeSettings,
    "kafka": KafkaSettings,
    "topics": TopicSettings,
    "worker": WorkerSettings,
    "privacy": PrivacySettings,
    "model": ModelSettings,
    "limits": LimitSettings,
}


def _policy(settings: PolicySettings) -> Policy:
    return Policy(
        one_timer_window=settings.one_timer_window,
        at_risk_after=settings.at_risk_after,
        inactive_after=settings.inactive_after,
        churned_after=settings.churned_after,
    )


def _section(cls: Any, values: Mapping[str, object], prefix: str, base: Any = None) -> Any:
    known = {f.name: f for f in fields(cls)}
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"config key `{prefix}.{key}`: unknown key; known keys: {', '.join(known)}")
        try:
            parsed[key] = known[key].metadata["parse"](value)
        except ValueError as error:
            raise ConfigError(f"config key `{prefix}.{key}`: {error}") from None
    return replace(base if base is not None else cls(), **parsed)


def _check_policy(settings: PolicySettings, prefix: str) -> None:
    for key, message in _policy(settings).problems():
        raise ConfigError(f"config key `{prefix}.{key}`: {message}")


def _check_kafka(kafka: KafkaSettings) -> None:
    if kafka.security_protocol.startswith("SASL_"):
        for key in ("sasl_username", "sasl_password"):
            if not getattr(kafka, key):
                raise ConfigError(
                    f"config key `kafka.{key}`: required with security_protocol {kafka.security_protocol}"
                )
    if bool(kafka.ssl_certfile) != bool(kafka.ssl_keyfile):
        raise ConfigError(
            "config key `kafka.ssl_keyfile`: a client certificate needs both ssl_certfile and ssl_keyfile"
        )


def config_from_mapping(document: Mapping[str, Any]) -> Config:
    """Build and check a Config from a parsed TOML document."""
    sections: dict[str, Any] = {}
    document = dict(document)
    segment_tables, classes = document.pop("segments", None), document.pop("classes", None)
    try:
        sections["segments"] = segment_rules(segment_tables, classes, read.duration)
        sections["triggers"] = triggers_of(
            document.pop("triggers", None), sections["segments"], read.duration
        )
        experiment_tables = document.pop("experiments", None)
        sections["experiments"] = experiments_of(
            experiment_tables, sections["segments"], read.duration, sections["triggers"]
        )
    except SegmentConfigError as error:
        raise ConfigError(str(error)) from None
    for name, values in document.items():
        if name not in _SECTIONS:
            known = ", ".join([*_SECTIONS, "segments", "classes", "triggers", "experiments"])
            raise ConfigError(f"config key `{name}`: unknown section; known: {known}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"config key `{name}`: expected a table of settings")
        values = dict(values)
        store_tables = values.pop("stores", None) if name == "policy" else None
        sections[name] = _section(_SECTIONS[name], values, name)
        if store_tables is not None:
            sections["stores"] = _stores(store_tables, sections[name])
    config = Config(**sections)
    try:
        model = None if config.model.path is None else _loaded_model(config.model.path)
        config = replace(config, segments=check_model_conditions(config.segments, model))
    except SegmentConfigError as error:
        raise ConfigError(str(error)) from None
    _check_kafka(config.kafka)
    _check_policy(config.policy, "policy")
    for store, settings in config.stores.items():
        _check_policy(settings, f"policy.stores.{store}")
    return config


def _stores(tables: object, default: PolicySettings) -> dict[str, PolicySettings]:
    if not isinstance(tables, Mapping):
        raise ConfigError("config key `policy.stores`: expected a table of stores")
    stores = {}
    for store, values in tables.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"config key `policy.stores.{store}`: expected a table of settings")
        # A store inherits every window it does not set from the default policy.
        stores[store] = _section(PolicySettings, values, f"policy.stores.{store}", base=default)
    return stores


def _environment_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS=... becomes kafka.bootstrap_servers."""
    overrides: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section = next((s for s in _SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue
        overrides.setdefault(section, {})[rest[len(section) + 1 :]] = value
    return overrides


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
) -> Config:
    """Read the config file (if any), apply LIFECYCLE_<SECTION>_<KEY> variables over it, then
    `overrides` (command-line options), and check the result."""
    document: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except OSError as error:
            raise ConfigError(f"config file {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path}: not valid TOML: {error}") from None
    env = os.environ if environ is None else environ
    layers: list[Mapping[str, Mapping[str, object]]] = [_environment_overrides(env), overrides or {}]
    for layer in layers:
        for section, values in layer.items():
            merged = dict(document.get(section, {}))
            merged.update(values)
            document[section] = merged
    return config_from_mapping(document)
