"""The policy replicas acknowledge versions under their pod name and pool, and the gateway
awaits as many acknowledgements as the policy Deployment has replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

K8S = Path(__file__).resolve().parents[2] / "k8s"


def _deployment(component: str) -> dict[str, Any]:
    (doc,) = yaml.safe_load_all((K8S / "base" / component / "deployment.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def _env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_policy_replicas_acknowledge_as_their_pod_in_their_pool() -> None:
    policy = _deployment("policy")
    (container,) = policy["spec"]["template"]["spec"]["containers"]
    assert "--follow-versions" in container["args"]
    env = _env(policy)
    replica = env["FULMEN_SERVE_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    pool = env["FULMEN_SERVE_POOL"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert replica == "metadata.name"
    assert pool == "metadata.labels['fulmen.dev/pool']"
    labels = policy["spec"]["template"]["metadata"]["labels"]
    assert labels["fulmen.dev/pool"] == "default"


def test_the_gateway_awaits_every_policy_replica_of_its_pool() -> None:
    policy, gateway = _deployment("policy"), _deployment("gateway")
    env = _env(gateway)
    assert int(env["FULMEN_PRODUCER__AWAIT_REPLICAS"]["value"]) == policy["spec"]["replicas"]
    pool = policy["spec"]["template"]["metadata"]["labels"]["fulmen.dev/pool"]
    assert env["FULMEN_PRODUCER__SERVING_POOL"]["value"] == pool


def test_no_overlay_scales_the_policy_server_alone() -> None:
    """An overlay that changes the policy replicas must change the gateway's await too."""
    for overlay in sorted((K8S / "overlays").glob("*/kustomization.yaml")):
        text = overlay.read_text()
        if "name: fulmen-policy" in text:
            assert "FULMEN_PRODUCER__AWAIT_REPLICAS" in text, overlay
