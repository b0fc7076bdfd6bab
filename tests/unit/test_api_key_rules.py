"""API keys: parsing (settings, key files, `Authorization` headers), the constant-time
check, the loopback rule, and the gateway's header policy towards its upstream."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from fulmen.auth import ApiKeys, AuthError, bearer_key, check_exposure, guard_listening, is_loopback
from fulmen.producers.gateway import GatewaySettings
from fulmen.producers.gateway._upstream import forwarded_headers
from fulmen.serving import DEFAULT_MODEL_ROOTS, ServeSettings
from fulmen.trainers import TrainSettings


def test_no_key_is_open() -> None:
    keys = ApiKeys()
    assert not keys.required
    assert keys.own is None
    assert keys.accepts(None)
    assert keys.accepts_header("Bearer anything")


def test_only_the_keys_are_accepted() -> None:
    keys = ApiKeys(["new-key", "old-key"])
    assert keys.required
    assert keys.own == "new-key"
    assert keys.accepts("new-key")
    assert keys.accepts("old-key")
    for wrong in (None, "", "new", "new-key2", "NEW-KEY", " new-key", "old-keyold-key"):
        assert not keys.accepts(wrong), wrong


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer k-1", "k-1"),
        ("bearer k-1", "k-1"),
        ("BEARER   k-1  ", "k-1"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic k-1", None),
        ("k-1", None),
        (None, None),
    ],
)
def test_bearer_header(header: str | None, key: str | None) -> None:
    assert bearer_key(header) == key
    assert ApiKeys(["k-1"]).accepts_header(header) is (key == "k-1")


@pytest.mark.parametrize("bad", ["", "two words", "tab\tkey", "clé", "line\nbreak"])
def test_malformed_keys_are_refused(bad: str) -> None:
    with pytest.raises(AuthError, match="API key #2 is empty or has spaces"):
        ApiKeys(["fine", bad])


def test_a_key_file_holds_one_key_a_line(tmp_path: Path) -> None:
    file = tmp_path / "keys"
    file.write_text("\n  first  \n\nsecond\n")
    keys = ApiKeys.load(["given"], file=file)
    assert [keys.accepts(k) for k in ("given", "first", "second", "")] == [True, True, True, False]
    assert keys.own == "given"


def test_unusable_key_files(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="cannot read the API key file"):
        ApiKeys.load(file=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n \n")
    with pytest.raises(AuthError, match="holds no key"):
        ApiKeys.load(file=empty)


def test_keys_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULMEN_GATEWAY_API_KEYS", " new , old,")
    gateway = GatewaySettings().load_api_keys()
    assert gateway.accepts("new")
    assert gateway.accepts("old")
    assert not gateway.accepts("")
    file = tmp_path / "policy-keys"
    file.write_text("from-file\n")
    monkeypatch.setenv("FULMEN_SERVE_API_KEYS", "listed")
    monkeypatch.setenv("FULMEN_SERVE_API_KEY_FILE", str(file))
    monkeypatch.setenv("FULMEN_SERVE_MODEL_ROOTS", '["/artifacts", "/more"]')
    serve = ServeSettings()
    assert serve.load_api_keys().accepts("listed")
    assert serve.load_api_keys().accepts("from-file")
    assert serve.model_roots == [Path("/artifacts"), Path("/more")]
    assert "listed" not in repr(serve)  # SecretStr


def test_the_default_model_root_is_where_trainers_write() -> None:
    assert list(DEFAULT_MODEL_ROOTS) == [TrainSettings().artifacts_dir]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.1.2.3", False),
        ("gateway.example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_beyond_loopback_only_with_a_key(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AuthError) as refused:
        check_exposure(ApiKeys(), "0.0.0.0", service="gateway", env_prefix="FULMEN_GATEWAY_")
    assert str(refused.value) == (
        "the gateway will not listen on 0.0.0.0 without an API key: set "
        "FULMEN_GATEWAY_API_KEYS or FULMEN_GATEWAY_API_KEY_FILE, or listen on 127.0.0.1"
    )
    with caplog.at_level(logging.WARNING, logger="fulmen.auth"):
        guard_listening(ApiKeys(["k"]), "0.0.0.0", service="gateway", env_prefix="X_")
        assert not caplog.records
        guard_listening(ApiKeys(), "127.0.0.1", service="gateway", env_prefix="X_")
    assert "runs without an API key on 127.0.0.1" in caplog.text


def test_the_upstream_gets_the_agent_s_key_only_when_told() -> None:
    agent = [("Authorization", "Bearer agent"), ("X-Custom", "1"), ("Host", "gw")]
    assert forwarded_headers(agent) == [("X-Custom", "1")]
    assert forwarded_headers(agent, client_key=True) == [
        ("Authorization", "Bearer agent"),
        ("X-Custom", "1"),
    ]
    with pytest.raises(ValidationError, match="not both"):
        GatewaySettings(upstream_api_key="k", forward_client_key=True)


def test_the_policy_pod_reads_its_keys_from_a_required_secret() -> None:
    manifest = Path(__file__).resolve().parents[2] / "k8s" / "base" / "policy" / "deployment.yaml"
    pod = yaml.safe_load(manifest.read_text())["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"] == {"secretName": "fulmen-policy", "optional": False}
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert env["FULMEN_SERVE_API_KEY_FILE"] == f"{mount['mountPath']}/api-keys"
    assert env["FULMEN_SERVE_MODEL_ROOTS"] == '["/artifacts"]'
    assert "0.0.0.0" in container["args"]  # beyond loopback: the key is what lets it start
