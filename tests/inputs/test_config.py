"""Configuration: defaults, file, environment and options, and errors that name the key."""

import re

import pytest

from stream.config import ConfigError, load_config, parse_duration
from stream.lifecycle.instants import DAY_US, HOUR_US, SECOND_US


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_are_those_of_the_contract():
    policy = load_config(None, environ={}).policy_book().default
    assert (policy.one_timer_window, policy.at_risk_after, policy.inactive_after, policy.churned_after) == (
        30 * DAY_US,
        60 * DAY_US,
        90 * DAY_US,
        365 * DAY_US,
    )


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("30d", 30 * DAY_US),
        ("1d12h", DAY_US + 12 * HOUR_US),
        ("90s", 90 * SECOND_US),
        ("500ms", 500_000),
        ("2w", 14 * DAY_US),
    ],
)
def test_durations(text, micros):
    assert parse_duration(text) == micros


def test_a_store_inherits_the_windows_it_does_not_set(tmp_path):
    config = load_config(
        write(
            tmp_path, '[policy]\nat_risk_after = "50d"\n[policy.stores.outlet]\none_timer_window = "45d"\n'
        ),
        environ={},
    )
    outlet = config.policy_book().for_store("outlet")
    assert outlet.one_timer_window == 45 * DAY_US and outlet.at_risk_after == 50 * DAY_US
    assert config.policy_book().for_store("elsewhere").one_timer_window == 30 * DAY_US


def test_environment_overrides_the_file_and_options_override_both(tmp_path):
    path = write(tmp_path, "[kafka]\npartitions = 3\n[worker]\nweb_port = 7000\n")
    config = load_config(
        path,
        environ={"LIFECYCLE_KAFKA_PARTITIONS": "12", "LIFECYCLE_WORKER_WEB_PORT": "7100"},
        overrides={"worker": {"web_port": 7200}},
    )
    assert config.kafka.partitions == 12 and config.worker.web_port == 7200


@pytest.mark.parametrize(
    ("text", "environ", "key"),
    [
        ('[policy]\none_timer_window = "thirty"\n', {}, "policy.one_timer_window"),
        ('[policy]\nat_risk_after = "100d"\n', {}, "policy.at_risk_after"),
        ('[policy.stores.x]\nchurned_after = "10d"\n', {}, "policy.stores.x."),
        ("[kafka]\npartitions = 0\n", {}, "kafka.partitions"),
        ("[kafka]\npartition = 3\n", {}, "kafka.partition"),
        ("[wroker]\nstore = 'memory'\n", {}, "wroker"),
        ("", {"LIFECYCLE_WORKER_STORE": "postgres"}, "worker.store"),
        ("", {"LIFECYCLE_TIME_TICKS": "perhaps"}, "time.ticks"),
        ("", {"LIFECYCLE_WORKER_STATIC_MEMBERSHIP": "sometimes"}, "worker.static_membership"),
        ("[worker]\nstandby_replicas = -1\n", {}, "worker.standby_replicas"),
        ('[worker]\nsession_timeout = "2s"\n', {}, "worker.session_timeout"),
        ("", {"LIFECYCLE_WORKER_SESSION_TIMEOUT": "5m"}, "worker.session_timeout"),
        ("", {"LIFECYCLE_WORKER_FAUST_METRICS": "maybe"}, "worker.faust_metrics"),
        ('[worker]\nprocessing_guarantee = "exactly-once"\n', {}, "worker.processing_guarantee"),
        ('[worker]\ntransaction_interval = "1ms"\n', {}, "worker.transaction_interval"),
        ("", {"LIFECYCLE_WORKER_TRANSACTION_INTERVAL": "1m"}, "worker.transaction_interval"),
    ],
)
def test_bad_config_stops_with_a_message_naming_the_key(tmp_path, text, environ, key):
    with pytest.raises(ConfigError, match=re.escape(f"config key `{key}")):
        load_config(write(tmp_path, text), environ=environ)


def test_missing_or_broken_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[kafka\n"), environ={})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_username = "u"\n', "kafka.sasl_password"),
        ('[kafka]\nsecurity_protocol = "TLS"\n', "kafka.security_protocol"),
        ('[kafka]\nsasl_mechanism = "MD5"\n', "kafka.sasl_mechanism"),
        ('[kafka]\nssl_cafile = "/nonexistent/ca.pem"\n', "kafka.ssl_cafile"),
    ],
)
def test_bad_security_settings_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=re.escape(f"config key `{key}`")):
        load_config(write(tmp_path, text), environ={})


def test_sasl_settings_reach_the_kafka_clients(tmp_path):
    from stream.kafka.client import client_settings, faust_credentials

    config = load_config(
        write(tmp_path, '[kafka]\nsecurity_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "SCRAM-SHA-512"\n'),
        environ={"LIFECYCLE_KAFKA_SASL_USERNAME": "shop", "LIFECYCLE_KAFKA_SASL_PASSWORD": "s"},
    )
    settings = client_settings(config)
    assert (settings["sasl_mechanism"], settings["sasl_plain_username"]) == ("SCRAM-SHA-512", "shop")
    credentials = faust_credentials(config)
    assert credentials.username == "shop" and credentials.mechanism.value == "SCRAM-SHA-512"
