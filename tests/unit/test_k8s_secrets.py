"""The manifests never start a store process or client without the store's credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

K8S = Path(__file__).resolve().parents[2] / "k8s"
STORE_SECRET = "fulmen-clickhouse"


def _secret_refs(node: Any) -> Iterator[dict[str, Any]]:
    """Every `secretKeyRef`/`secretRef` (env, envFrom) under `node`, patches included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretKeyRef", "secretRef") and isinstance(value, dict):
                yield value
            elif key == "patch" and isinstance(value, str):
                yield from _secret_refs(yaml.safe_load(value))
            else:
                yield from _secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_refs(item)


def _refs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (str(path.relative_to(K8S)), ref)
        for path in sorted(K8S.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        for ref in _secret_refs(doc)
    ]


def test_no_reference_to_the_store_secret_is_optional() -> None:
    refs = [(path, ref) for path, ref in _refs() if ref.get("name") == STORE_SECRET]
    assert len(refs) >= 8  # store, worker, scheduler, trainer: user and password each
    optional = [(path, ref) for path, ref in refs if ref.get("optional")]
    assert optional == []


def test_the_store_process_binds_all_addresses_only_with_a_required_password() -> None:
    (store,) = yaml.safe_load_all((K8S / "base" / "store" / "statefulset.yaml").read_text())
    (container,) = store["spec"]["template"]["spec"]["containers"]
    assert "--insecure-no-auth" not in container["args"]
    env = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    password = env["FULMEN_STORE__PASSWORD"]["secretKeyRef"]
    assert password == {"name": STORE_SECRET, "key": "password"}
