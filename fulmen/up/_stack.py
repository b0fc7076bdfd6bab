"""The services of `fulmen up`, in the order they start, each with its command, its
environment, its address and how it says it is ready.

    kafka ─▶ store ─▶ worker ─▶ policy ─▶ scheduler ─▶ rollout ─▶ agent-1 … agent-N

Every process gets the environment of `fulmen up` with the stack's own choices on top:
the Kafka transport on the stack's broker, the store server's URL and its password
(FULMEN_STORE__PASSWORD when it is set, else a fresh random one: the store server never
runs without one; the store process alone gets the chDB directory instead). The policy
server requires the stack's API key (from its key file); the agents and the trainer jobs
send it.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fulmen._net import free_ports
from fulmen.up._broker import BrokerService
from fulmen.up._process import ProcessService, http_probe
from fulmen.up._settings import UpSettings

_DECIDED_HERE = (
    "FULMEN_TRANSPORT",
    "FULMEN_KAFKA__",
    "FULMEN_STORE__URL",
    "FULMEN_STORE__PATH",
    "FULMEN_SERVE_",
)
"""Inherited settings that would point a service elsewhere than the stack: dropped."""
_FULMEN = (sys.executable, "-m", "fulmen.cli")


@dataclass(frozen=True, slots=True)
class Stack:
    """The services in start order (the broker first), and the addresses clients use."""

    broker: BrokerService
    services: list[ProcessService]
    """store, worker, policy, scheduler, rollout (the release controller), agent-1 …
    agent-N."""
    store_url: str
    policy_url: str
    worker_metrics_url: str
    api_key_file: Path
    """The policy server's API key (written by `fulmen up`, readable by its user only)."""


def _ports(wanted: list[int]) -> list[int]:
    """`wanted`, each 0 replaced by a free port (distinct, and none of those wanted)."""
    free = iter(free_ports(wanted.count(0), besides=wanted))
    return [port or next(free) for port in wanted]


def plan_stack(
    settings: UpSettings, *, environ: Mapping[str, str], default_model: str, api_key: str
) -> Stack:
    """The stack `settings` describe under `settings.dir` (absolute paths throughout, so
    what a job writes a server can read). Ports of 0 are replaced by free ones here.
    `default_model` is the name the agent asks the policy server for before any version;
    `api_key` is the policy server's key, which `fulmen up` writes to `api_key_file`."""
    root = settings.dir.resolve()
    key_file = root / "api-key"
    logs = root / "logs"
    kafka_port, store_port, worker_port, policy_port = _ports(
        [settings.kafka_port, settings.store_port, settings.worker_port, settings.policy_port]
    )
    store_url = f"http://127.0.0.1:{store_port}"
    store_password = environ.get("FULMEN_STORE__PASSWORD") or secrets.token_urlsafe(32)
    policy_url = f"http://127.0.0.1:{policy_port}/v1"
    metrics_url = f"http://127.0.0.1:{worker_port}/metrics"
    broker = BrokerService(
        port=kafka_port, data_dir=root / "kafka", log=logs / "kafka.log",
        start_timeout_s=settings.ready_timeout_s,
    )  # fmt: skip

    inherited = {
        key: value for key, value in environ.items() if not key.startswith(_DECIDED_HERE)
    } | {"PYTHONUNBUFFERED": "1"}
    env = inherited | {
        "FULMEN_TRANSPORT": "kafka",
        "FULMEN_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "FULMEN_STORE__URL": store_url,
        "FULMEN_STORE__PASSWORD": store_password,
    }

    store = ProcessService(
        "store", [*_FULMEN, "store", "serve", "--port", str(store_port)],
        env=inherited | {"FULMEN_STORE__PATH": str(root / "store"),
                         "FULMEN_STORE__PASSWORD": store_password}, log=logs / "store.log",
        address=store_url, probe=http_probe(f"{store_url}/ping"),
    )  # fmt: skip
    worker = ProcessService(
        "worker", [*_FULMEN, "worker"],
        env=env | {"FULMEN_WORKER_WEB_PORT": str(worker_port),
                   "FULMEN_WORKER_DATA_DIR": str(root / "worker"),
                   "FULMEN_WORKER_PARTITIONS": str(settings.partitions)},
        log=logs / "worker.log", address=metrics_url, probe=http_probe(metrics_url),
    )  # fmt: skip
    policy = ProcessService(
        "policy", [*_FULMEN, "serve", "--model", settings.model, "--port", str(policy_port),
                   "--name", default_model, "--follow-versions"],
        env=env | {"FULMEN_SERVE_API_KEY_FILE": str(key_file),
                   "FULMEN_SERVE_MODEL_ROOTS": json.dumps([str(root / "artifacts")])},
        log=logs / "policy.log", address=policy_url,
        probe=http_probe(f"{policy_url.removesuffix('/v1')}/health"),
    )  # fmt: skip
    # APO scores prompts on the policy server (and, unless told otherwise, asks it for edits).
    apo_keys = {"FULMEN_TRAIN_APO__TARGET_API_KEY": api_key,
                "FULMEN_TRAIN_APO__OPTIMIZER_API_KEY": api_key}  # fmt: skip
    train_defaults = {k: v for k, v in (settings.train_env | apo_keys).items() if k not in environ}
    scheduler = ProcessService(
        "scheduler", [*_FULMEN, "scheduler", "--executor", "local"],
        env=env | train_defaults | {
            "FULMEN_SCHEDULER_AGENTS": json.dumps([settings.agent_name]),
            "FULMEN_SCHEDULER_ALGOS": json.dumps([settings.algo]),
            "FULMEN_SCHEDULER_WINDOW__EVERY_EPISODES": str(settings.window_episodes),
            "FULMEN_SCHEDULER_LOCAL__COMMAND": json.dumps([*_FULMEN, "train"]),
            "FULMEN_SCHEDULER_LOCAL__WORK_DIR": str(logs / "jobs"),
            "FULMEN_TRAIN_TASK": settings.task,
            "FULMEN_TRAIN_BASE_MODEL": settings.model,
            "FULMEN_TRAIN_ARTIFACTS_DIR": str(root / "artifacts"),
            "FULMEN_TRAIN_SNAPSHOTS_DIR": str(root / "windows"),
            "FULMEN_TRAIN_GATE__HELDOUT_TASKS": str(settings.heldout_tasks),
            "FULMEN_TRAIN_GATE__MAX_NEW_TOKENS": str(settings.max_tokens),
            "FULMEN_TRAIN_CANARY_SHARE": str(settings.canary_share),
        },
        log=logs / "scheduler.log",
    )  # fmt: skip
    release_defaults = {k: v for k, v in settings.release_env.items() if k not in environ}
    releases = ProcessService("rollout", [*_FULMEN, "rollout"], env=env | release_defaults,
                              log=logs / "rollout.log")  # fmt: skip
    # The OpenAI client's own variable; agents switch to a model version once the policy
    # server acknowledged it loaded (it is the stack's one replica).
    agent_env = env | {"OPENAI_API_KEY": api_key, "FULMEN_PRODUCER__AWAIT_REPLICAS": "1"}
    agents = [
        _agent(settings, i, agent_env, root, policy_url) for i in range(1, settings.agents + 1)
    ]
    return Stack(broker, [store, worker, policy, scheduler, releases, *agents], store_url,
                 policy_url, metrics_url, key_file)  # fmt: skip


def _agent(
    settings: UpSettings, number: int, env: dict[str, str], root: Path, url: str
) -> ProcessService:
    """Agent `number` (from 1): seed `number - 1` (agent 1 runs the traffic of `fulmen demo`),
    a spill directory of its own, the same agent name."""
    name = f"agent-{number}"
    command = [
        sys.executable, "-m", settings.agent, "--base-url", url, "--task", settings.task,
        "--rollouts", str(settings.rollouts), "--temperature", str(settings.temperature),
        "--max-tokens", str(settings.max_tokens), "--seed", str(number - 1),
    ]  # fmt: skip
    producer = {
        "FULMEN_PRODUCER__AGENT_NAME": settings.agent_name,
        "FULMEN_PRODUCER__REQUEST_TOKEN_IDS": "true",  # RL and SFT train on the served tokens
        "FULMEN_PRODUCER__SPILL_DIR": str(root / "spill" / name),
    }
    return ProcessService(
        name,
        command,
        env=env | producer,
        log=root / "logs" / f"{name}.log",
        address=f"→ {url}",
        finishes=settings.rollouts > 0,
    )
