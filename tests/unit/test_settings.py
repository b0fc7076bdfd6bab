"""Configuration from the environment and a TOML file, converted to librdkafka at the edge."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulmen.producers import FulmenSettings


def test_environment_and_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "fulmen.toml"
    config.write_text(
        """
transport = "kafka"
[kafka]
bootstrap_servers = "file:9092"
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "agent"
[kafka.options]
"socket.keepalive.enable" = "true"
[producer]
agent_name = "from-file"
"""
    )
    monkeypatch.setenv("FULMEN_CONFIG_FILE", str(config))
    monkeypatch.setenv("FULMEN_KAFKA__SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("FULMEN_PRODUCER__AGENT_NAME", "from-env")
    settings = FulmenSettings()
    assert settings.transport == "kafka"
    assert settings.producer.agent_name == "from-env"  # the environment wins over the file
    client = settings.kafka.client_config()
    assert client["bootstrap.servers"] == "file:9092"
    assert client["security.protocol"] == "sasl_ssl"
    assert client["sasl.mechanism"] == "SCRAM-SHA-512"
    assert client["sasl.password"] == "s3cret"
    assert client["socket.keepalive.enable"] == "true"
    assert "s3cret" not in repr(settings)


def test_passthrough_options_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULMEN_KAFKA__OPTIONS", '{"security.protocol": "ssl", "client.id": "a"}')
    client = FulmenSettings().kafka.client_config()
    assert client["security.protocol"] == "ssl"
    assert client["client.id"] == "a"


def test_bad_values_fail_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULMEN_TRANSPORT", "carrier-pigeon")
    with pytest.raises(ValueError, match="transport"):
        FulmenSettings()


def test_topics_share_a_prefix() -> None:
    topics = FulmenSettings(topics={"prefix": "prod."}).topics
    assert topics.for_event("span") == "prod.spans"
    assert topics.for_event("version") == "prod.control"
    assert topics.event_topics() == [
        "prod.spans", "prod.rewards", "prod.rollouts", "prod.control", "prod.feedback"
    ]  # fmt: skip
    assert topics.stream_inputs() == [
        "prod.spans", "prod.rewards", "prod.rollouts", "prod.feedback"
    ]  # fmt: skip


def test_worker_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from fulmen.streams import DiscountedReturn, WorkerSettings

    monkeypatch.setenv("FULMEN_WORKER_GRACE_S", "2.5")
    monkeypatch.setenv("FULMEN_WORKER_CREDIT", "discounted")
    monkeypatch.setenv("FULMEN_WORKER_GAMMA", "0.5")
    policy = WorkerSettings().policy()
    assert policy.grace_s == 2.5
    assert isinstance(policy.credit, DiscountedReturn)
    monkeypatch.setenv("FULMEN_WORKER_CREDIT", "best")
    with pytest.raises(ValueError, match="credit"):
        WorkerSettings()


def test_a_worker_web_port_off_loopback_needs_a_token() -> None:
    from pydantic import SecretStr

    from fulmen.streams import WorkerSettings

    assert WorkerSettings().web_host == "127.0.0.1"
    assert WorkerSettings(web_host="::1").web_token is None
    with pytest.raises(ValueError, match="FULMEN_WORKER_WEB_TOKEN"):
        WorkerSettings(web_host="0.0.0.0")
    guarded = WorkerSettings(web_host="0.0.0.0", web_token=SecretStr("t"))
    assert guarded.web_token is not None
