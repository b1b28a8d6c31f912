"""Configuration: a TOML file, then LIFECYCLE_* environment variables, over sane defaults.

Every problem stops the program at start with a message that names the key, e.g.
"config key `policy.one_timer_window`: expected a duration like `30d`, got `thirty`".
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..lifecycle import Policy, PolicyBook, TimeRules
from ..lifecycle.customer import Scorer
from ..lifecycle.experiments import Experiments
from ..lifecycle.folding import DEFAULT_ORDERS_KEPT, DEFAULT_REFUNDS_KEPT
from ..lifecycle.instants import DAY_US, HOUR_US, MINUTE_US, SECOND_US
from ..lifecycle.segments import SegmentRules
from .experiments import experiments_of
from .segments import SegmentConfigError, check_model_conditions, segment_rules

ENV_PREFIX = "LIFECYCLE_"


class ConfigError(ValueError):
    """A configuration the program cannot run with; the message names the key."""


_UNITS = {"ms": 1000, "s": SECOND_US, "m": MINUTE_US, "h": HOUR_US, "d": DAY_US, "w": 7 * DAY_US}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> int:
    """Microseconds of a duration such as `30d`, `12h`, `1d12h`, `500ms`."""
    compact = text.replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"expected a duration like `30d`, `12h` or `90s`, got `{text}`")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def _duration(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like `30d` (a string), got `{value!r}`")
    return parse_duration(value)


def _positive_int(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"expected a whole number above zero, got `{value!r}`")
    return value


def _whole_number(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a whole number, 0 or more, got `{value!r}`")
    return value


def _session_timeout(value: object) -> int:
    timeout = _duration(value)
    # Kafka refuses sessions under 6 s (group.min.session.timeout.ms); faust refuses one longer
    # than its 90 s request timeout
    if not 6 * SECOND_US <= timeout <= 90 * SECOND_US:
        raise ValueError(f"expected a duration from 6s to 90s, got `{value}`")
    return timeout


def _share(value: object) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a share between 0 and 1, like 0.2, got `{value}`") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"expected a share between 0 and 1, like 0.2, got `{value!r}`")
    return float(value)


def _port(value: object) -> int:
    port = _positive_int(value)
    if port > 65535:
        raise ValueError(f"expected a port number up to 65535, got `{port}`")
    return port


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got `{value!r}`")
    return value


def _existing_file(value: object) -> str:
    path = _text(value)
    if not os.path.isfile(path):
        raise ValueError(f"no such file: `{path}`")
    return path


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ValueError(f"expected true or false, got `{value!r}`")


def _choice(*allowed: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got `{value!r}`")
        return str(value)

    return parse


def _setting(parse: Callable[[object], Any], default: Any) -> Any:
    return field(default=default, metadata={"parse": parse})


@dataclass(frozen=True)
class PolicySettings:
    one_timer_window: int = _setting(_duration, 30 * DAY_US)
    at_risk_after: int = _setting(_duration, 60 * DAY_US)
    inactive_after: int = _setting(_duration, 90 * DAY_US)
    churned_after: int = _setting(_duration, 365 * DAY_US)


@dataclass(frozen=True)
class TimeSettings:
    stale_after: int = _setting(_duration, DAY_US)
    max_future_skew: int = _setting(_duration, 5 * MINUTE_US)
    # a partition whose share of late events, per 1,000, is above this says so in the log
    late_share_warning: float = _setting(_share, 0.2)
    tick_interval: int = _setting(_duration, SECOND_US)
    tick_delay: int = _setting(_duration, SECOND_US)
    ticks: bool = _setting(_flag, True)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = _setting(_text, "127.0.0.1:9092")
    partitions: int = _setting(_positive_int, 6)
    security_protocol: str = _setting(_choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"), "PLAINTEXT")
    sasl_mechanism: str = _setting(_choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), "PLAIN")
    sasl_username: str = _setting(_text, "")
    sasl_password: str = _setting(_text, "")
    ssl_cafile: str = _setting(_existing_file, "")
    ssl_certfile: str = _setting(_existing_file, "")
    ssl_keyfile: str = _setting(_existing_file, "")


@dataclass(frozen=True)
class TopicSettings:
    orders: str = _setting(_text, "orders")
    transitions: str = _setting(_text, "lifecycle.transitions")
    customer_state: str = _setting(_text, "lifecycle.customer-state")
    dead_letters: str = _setting(_text, "lifecycle.dead-letters")
    ticks: str = _setting(_text, "lifecycle.ticks")
    segment_changes: str = _setting(_text, "lifecycle.segment-changes")


@dataclass(frozen=True)
class WorkerSettings:
    app_id: str = _setting(_text, "lifecycle")
    store: str = _setting(_choice("rocksdb", "memory"), "rocksdb")
    data_dir: str = _setting(_text, "./var/worker")
    web_port: int = _setting(_port, 6066)
    web_host: str = _setting(_text, "127.0.0.1")
    # Kafka static membership: a restarted worker gets its partitions back at once instead
    # of after the dead member's session (60 s); a stopped one does not leave the group.
    static_membership: bool = _setting(_flag, False)
    # other workers keep a copy of each partition's tables, read from the changelog as it is
    # written: the worker that takes a dead one's partitions over has (nearly) nothing to
    # restore. 0: none, every take-over restores the whole changelog partition.
    standby_replicas: int = _setting(_whole_number, 1)
    # how long a worker that stopped answering (SIGKILL, a lost machine) keeps its partitions
    # before the others take them over
    session_timeout: int = _setting(_session_timeout, 60 * SECOND_US)
    # faust's own per-message metrics (faust_*) on /metrics; they cost about a tenth of the
    # worker's time, and the dashboards and alerts use only the lifecycle_* ones
    faust_metrics: bool = _setting(_flag, False)
    # customers kept decoded in memory after they were written, over all partitions: a
    # customer read again soon skips the store's read and the decoding. A few KB each (more
    # for customers with many orders); 0: every read goes to the store
    decoded_customers: int = _setting(_whole_number, 10_000)


@dataclass(frozen=True)
class PrivacySettings:
    # email and marketing consent from order events, kept in state and sent with snapshots
    # and state records; false: dropped on arrival, so no output carries them
    contact_data: bool = _setting(_flag, True)


def _model_file(value: object) -> str:
    """A model file that loads (`lifecycle model fit`'s output), checked at start."""
    path = _existing_file(value)
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
    kept = _positive_int(value)
    if kept < 10:
        raise ValueError(f"expected 10 or more (orders a customer keeps in detail), got `{kept}`")
    return kept


@dataclass(frozen=True)
class LimitSettings:
    # orders a customer keeps in detail; beyond them (and a tenth more), the oldest are folded
    # into totals (docs/lifecycle.md, "Customers with many orders")
    orders_kept: int = _setting(_orders_kept, DEFAULT_ORDERS_KEPT)
    # refunds an order keeps (each by event id, so one sent again counts once); one more is
    # rejected
    refunds_per_order: int = _setting(_positive_int, DEFAULT_REFUNDS_KEPT)


@dataclass(frozen=True)
class ModelSettings:
    # model.json from `lifecycle model fit`: its scores in every snapshot and state record
    path: str | None = _setting(_model_file, None)


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
        sections["segments"] = segment_rules(segment_tables, classes, _duration)
        experiment_tables = document.pop("experiments", None)
        sections["experiments"] = experiments_of(experiment_tables, sections["segments"], _duration)
    except SegmentConfigError as error:
        raise ConfigError(str(error)) from None
    for name, values in document.items():
        if name not in _SECTIONS:
            known = ", ".join([*_SECTIONS, "segments", "classes", "experiments"])
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
