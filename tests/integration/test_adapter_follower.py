"""The model server's controller against a real broker and a real policy server: versions
published on the Kafka control topic, before and after it starts, are loaded as adapters
under their model names; a prompt version and a name already loaded change nothing."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from fulmen.kafka import KafkaSettings, create_topics
from fulmen.models import load_policy, tiny_model_dir
from fulmen.producers import FulmenSettings, publish_version
from fulmen.serving import AdapterFollower, PolicyServer, serve_in_thread
from tests.support.events import version_event

pytestmark = pytest.mark.integration


def _adapter(base: Path, out: Path) -> str:
    model, _ = load_policy(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        get_peft_model(model, config).save_pretrained(out)
    return str(out)


def test_published_versions_are_loaded_into_the_server(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    settings = FulmenSettings(
        transport="kafka", kafka={"bootstrap_servers": bootstrap_servers},
        topics={"prefix": f"a{uuid.uuid4().hex[:8]}."},
    )  # fmt: skip
    create_topics(
        KafkaSettings(bootstrap_servers=bootstrap_servers), settings.topics.event_topics()
    )
    base = tiny_model_dir(tmp_path / "tiny", seed=3)
    adapter = _adapter(base, tmp_path / "adapter")
    before = version_event("v1").model_copy(update={"artifact_uri": adapter})
    after = version_event("v2").model_copy(update={"artifact_uri": adapter})
    publish_version(before, settings)
    server = PolicyServer(base, name="base", model_roots=[tmp_path])
    with serve_in_thread(server) as url:
        follower = AdapterFollower(url, settings)
        follower.start()
        publish_version(version_event("p1", "prompt", templates={"system": "hi"}), settings)
        publish_version(after, settings)
        publish_version(before, settings)  # a rollback republishes a loaded version
        deadline = time.monotonic() + 60
        while len(follower.loaded) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the republished v1 is read and found loaded
        follower.stop()
    assert follower.loaded == ["v1-name", "v2-name"]
    assert {m.name for m in server.models()} == {"base", "v1-name", "v2-name"}
