"""API keys and model roots on the real servers: the policy server and the gateway over
HTTP, with the plain `openai` client, a tiny model and a real LoRA adapter on disk; the
`fulmen` command's refusal to listen beyond loopback without a key."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import torch
from typer.testing import CliRunner

from fulmen.auth import AuthError
from fulmen.cli import app
from fulmen.models import tiny_model_dir
from fulmen.producers import FulmenSettings
from fulmen.producers.gateway import GatewaySettings, gateway_in_thread, open_gateway
from fulmen.serving import PolicyServer, ServeSettings, serve_in_thread
from tests.support.adapters import make_adapter

MODEL = "tiny"
POLICY_KEYS = ("policy-key-new", "policy-key-old")
GATEWAY_KEY = "gateway-key"


def assert_unauthorized(reply: httpx.Response) -> None:
    """401, OpenAI's error body for a bad key, and the scheme to use."""
    assert reply.status_code == 401
    error = reply.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_api_key",
        None,
    )
    assert "Authorization: Bearer <key>" in error["message"]
    assert reply.headers["www-authenticate"] == "Bearer"


@dataclass(frozen=True)
class Policy:
    url: str  # http://127.0.0.1:<port>/v1
    server: PolicyServer
    root: Path  # the model root: artifacts/
    outside: Path  # an adapter outside the root

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=key, max_retries=0)

    def http(self, key: str | None = POLICY_KEYS[0]) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url.removesuffix("/v1"), headers=headers)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Policy]:
    """A policy server whose keys come from a key file (the Kubernetes Secret's shape)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("keys")
    base = tiny_model_dir(tmp / MODEL, seed=0)
    root = tmp / "artifacts"
    make_adapter(base, root / "v1")
    outside = make_adapter(base, tmp / "elsewhere" / "v1")
    key_file = tmp / "api-keys"
    key_file.write_text(f"{POLICY_KEYS[0]}\n\n  {POLICY_KEYS[1]}  \n")
    keys = ServeSettings(api_key_file=key_file).load_api_keys()
    server = PolicyServer(base, name=MODEL, precision="float32", model_roots=[root])
    try:
        with serve_in_thread(server, keys=keys) as url:
            yield Policy(url, server, root, outside)
    finally:
        torch.set_num_threads(threads)


def chat(client: openai.OpenAI) -> str:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "3+4?"}], max_tokens=4, temperature=0
    )
    return reply.choices[0].message.content or ""


# -- the policy server -----------------------------------------------------------------------


def test_requests_without_a_valid_key_are_401_in_openai_s_shape(policy: Policy) -> None:
    for key in (None, "wrong", POLICY_KEYS[0] + "x", POLICY_KEYS[0][:-1]):
        assert_unauthorized(policy.http(key).get("/v1/models"))
    not_bearer = httpx.get(
        f"{policy.url}/models", headers={"authorization": f"Basic {POLICY_KEYS[0]}"}
    )
    assert not_bearer.status_code == 401
    adapter = {"lora_name": "x", "lora_path": str(policy.root / "v1")}
    assert policy.http(None).post("/v1/load_lora_adapter", json=adapter).status_code == 401
    assert policy.http(None).post("/v1/unload_model", json={"model_name": "x"}).status_code == 401
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(policy.client("wrong"))
    assert caught.value.code == "invalid_api_key"


def test_every_key_of_the_file_is_accepted_and_health_is_open(policy: Policy) -> None:
    for key in POLICY_KEYS:  # rotation: the new key and the old one
        assert [m.id for m in policy.client(key).models.list()] == [MODEL]
        assert chat(policy.client(key))
    assert httpx.get(policy.url.removesuffix("/v1") + "/health").status_code == 200


def test_adapters_load_from_the_model_roots_only(policy: Policy) -> None:
    http = policy.http()
    inside = http.post(
        "/v1/load_lora_adapter", json={"lora_name": "v1", "lora_path": str(policy.root / "v1")}
    )
    assert inside.status_code == 200, inside.text
    link = policy.root / "link"
    link.symlink_to(policy.outside, target_is_directory=True)
    escapes = {
        "dot-dot": str(policy.root / ".." / "elsewhere" / "v1"),
        "symlink": str(link),
        "absolute": str(policy.outside),
        "system": "/etc",
    }
    for name, path in escapes.items():
        refused = http.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path})
        assert refused.status_code == 403, (name, refused.text)
        error = refused.json()["error"]
        assert error["type"] == "permission_error"
        assert error["code"] == "path_not_allowed"
        assert error["param"] == "lora_path"
        assert "outside the directories this server loads from" in error["message"]
    weights = http.post("/v1/load_model", json={"model_name": "w", "model_path": "/tmp"})
    assert weights.status_code == 403
    assert weights.json()["error"]["param"] == "model_path"
    assert [m.id for m in policy.client(POLICY_KEYS[0]).models.list()] == [MODEL, "v1"]
    assert http.post("/v1/unload_lora_adapter", json={"lora_name": "v1"}).status_code == 200


def test_the_base_model_cannot_be_unloaded(policy: Policy) -> None:
    http = policy.http()
    for route, field in (
        ("/v1/unload_model", "model_name"),
        ("/v1/unload_lora_adapter", "lora_name"),
    ):
        refused = http.post(route, json={field: MODEL})
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == f"the base model `{MODEL}` cannot be unloaded"
    assert chat(policy.client(POLICY_KEYS[0]))


def test_no_listening_beyond_loopback_without_a_key(policy: Policy) -> None:
    with (
        pytest.raises(AuthError, match="FULMEN_SERVE_API_KEYS"),
        serve_in_thread(policy.server, host="0.0.0.0"),
    ):
        pass


# -- the gateway -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateways() -> Iterator[contextlib.ExitStack]:
    """Where the gateways started by the tests are stopped, at the module's end."""
    with contextlib.ExitStack() as stack:
        yield stack


def start_gateway(stack: contextlib.ExitStack, tmp: Path, policy: Policy, **options: object) -> str:
    """A gateway in front of the policy server, events on an in-process bus; its root URL."""
    settings = GatewaySettings.model_validate({"upstream_url": policy.url} | options)
    gateway = open_gateway(settings, FulmenSettings(producer={"spill_dir": tmp / "spill"}))
    stack.callback(gateway.close, 10)
    return stack.enter_context(gateway_in_thread(gateway))


def test_the_gateway_takes_its_own_keys_and_sends_the_upstream_s(
    policy: Policy, gateways: contextlib.ExitStack, tmp_path: Path
) -> None:
    key_file = tmp_path / "gateway-keys"
    key_file.write_text(GATEWAY_KEY + "\n")
    url = start_gateway(
        gateways, tmp_path, policy, api_keys="other-gateway-key", api_key_file=str(key_file),
        upstream_api_key=POLICY_KEYS[1],
    )  # fmt: skip
    for key in (None, "wrong", POLICY_KEYS[0]):  # the upstream's key is not the gateway's
        headers = {"authorization": f"Bearer {key}"} if key else {}
        for method, path in (("GET", "/v1/models"), ("POST", "/rollouts"), ("GET", "/metrics"),
                             ("GET", "/fulmen/stats")):  # fmt: skip
            assert_unauthorized(httpx.request(method, url + path, headers=headers))
    assert httpx.get(f"{url}/health").status_code == 200
    for key in (GATEWAY_KEY, "other-gateway-key"):  # the file's and the setting's
        assert chat(openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0))
    started = httpx.post(f"{url}/rollouts", headers={"authorization": f"Bearer {GATEWAY_KEY}"})
    assert started.status_code == 201
    recorded = openai.OpenAI(base_url=started.json()["base_url"], api_key=GATEWAY_KEY)
    assert chat(recorded)


def test_the_gateway_never_forwards_the_agent_s_key_unless_told(
    policy: Policy, gateways: contextlib.ExitStack, tmp_path: Path
) -> None:
    # An open gateway (loopback) without an upstream key: the agent's key stays here.
    silent = start_gateway(gateways, tmp_path / "a", policy)
    with pytest.raises(openai.AuthenticationError):
        chat(openai.OpenAI(base_url=f"{silent}/v1", api_key=POLICY_KEYS[0], max_retries=0))
    forwarding = start_gateway(gateways, tmp_path / "b", policy, forward_client_key=True)
    assert chat(openai.OpenAI(base_url=f"{forwarding}/v1", api_key=POLICY_KEYS[0], max_retries=0))


def test_the_gateway_does_not_listen_beyond_loopback_without_a_key(
    policy: Policy, tmp_path: Path
) -> None:
    gateway = open_gateway(
        GatewaySettings(upstream_url=policy.url),
        FulmenSettings(producer={"spill_dir": tmp_path / "spill"}),
    )
    try:
        with (
            pytest.raises(AuthError, match="FULMEN_GATEWAY_API_KEYS"),
            gateway_in_thread(gateway, host="0.0.0.0"),
        ):
            pass
    finally:
        gateway.close(10)


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "service", "prefix"),
    [(["serve"], "policy server", "FULMEN_SERVE_"), (["gateway"], "gateway", "FULMEN_GATEWAY_")],
)
def test_the_commands_refuse_a_public_address_without_a_key(
    command: list[str], service: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("API_KEYS", "API_KEY_FILE"):
        monkeypatch.delenv(prefix + name, raising=False)
    result = CliRunner().invoke(app, [*command, "--host", "0.0.0.0"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"error: the {service} will not listen on 0.0.0.0 without an API key: set "
        f"{prefix}API_KEYS or {prefix}API_KEY_FILE, or listen on 127.0.0.1"
    )


def test_a_key_file_that_cannot_be_read_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FULMEN_SERVE_API_KEY_FILE", str(tmp_path / "missing"))
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: cannot read the API key file {tmp_path / 'missing'}")
