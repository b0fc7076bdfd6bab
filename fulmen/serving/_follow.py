"""The controller beside a model server: the model versions the control topic needs are
loaded into the server through vLLM's runtime LoRA API (`POST /v1/load_lora_adapter`), which
vLLM and Fulmen's policy server both answer, so agents can request them by name; every load
is acknowledged on the control topic (a `ServingAck`), and adapters no version needs any
more are unloaded after a grace period and acknowledged `unloaded`.

    follower = AdapterFollower("http://127.0.0.1:8000/v1", FulmenSettings(),
                               replica_id="policy-0", pool="default", unload_grace_s=600)
    follower.start()   # a daemon thread; follower.stop() ends it

docs/serving.md#the-fleet describes the protocol.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from urllib.parse import urlsplit

import httpx

from fulmen.errors import FulmenError
from fulmen.producers import (
    FulmenSettings,
    KafkaControlReader,
    codec_for,
    decode_control,
    publish_control,
    version_meta,
)
from fulmen.producers._control_readers import ControlReader
from fulmen.schemas import ServingAck, ServingStatus, VersionEvent
from fulmen.serving._replica_plan import ReplicaPlan

logger = logging.getLogger("fulmen.serving")

_POLL_S = 0.5
_RETRY_S = 2.0
DEFAULT_UNLOAD_GRACE_S = 600.0


def default_replica_id(base_url: str) -> str:
    """The pod name (`HOSTNAME`), else the server's `host:port`."""
    if hostname := os.environ.get("HOSTNAME"):
        return hostname
    return urlsplit(base_url).netloc


class AdapterFollower:
    """Follows the control topic of `settings` (Kafka) from its beginning and keeps the
    server at `base_url` (`…/v1`) holding what `ReplicaPlan` says, once it has read what
    was on the topic when it started.

    Each load is acknowledged as replica `replica_id` (default: `default_replica_id`) of
    `pool`: `loaded` (a name the server already holds counts as loaded) or `failed` with
    the server's reason in `detail`; each unload `unloaded`. A server that is down, and a
    broker that does not take an acknowledgement, are retried. `api_key` is sent as
    `Authorization: Bearer <key>` (the server's own key; vLLM's `--api-key`).
    """

    def __init__(
        self,
        base_url: str,
        settings: FulmenSettings,
        *,
        reader: ControlReader | None = None,
        api_key: str | None = None,
        replica_id: str | None = None,
        pool: str = "default",
        unload_grace_s: float = DEFAULT_UNLOAD_GRACE_S,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # Acknowledgements go where the versions come from: the Kafka cluster of `settings`,
        # whatever transport the environment names for events.
        self._settings = settings.model_copy(update={"transport": "kafka"})
        self._topic = settings.topics.for_event("version")
        self._reader = reader or KafkaControlReader(settings.kafka, self._topic)
        self._codec = codec_for(settings)
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.replica_id = replica_id or default_replica_id(base_url)
        self.pool = pool
        self._plan = ReplicaPlan(pool=pool, grace_s=unload_grace_s)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fulmen-adapters", daemon=True)
        self.loaded: list[str] = []
        """Model names loaded so far, in order."""
        self.unloaded: list[str] = []
        """Model names unloaded so far, in order."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        with httpx.Client(timeout=60.0, headers=self._headers) as client:
            try:
                while not self._stopping.is_set():
                    try:
                        messages = self._reader.read(_POLL_S)
                    except Exception as exc:  # a broker down: try again
                        logger.warning("fulmen cannot read %s (retrying): %s", self._topic, exc)
                        self._stopping.wait(_RETRY_S)
                        continue
                    for message in messages:
                        event = decode_control(self._codec, self._topic, message)
                        if event is not None:
                            self._plan.apply(event)
                    if self._reader.caught_up():
                        self._reconcile(client)
            finally:
                self._reader.close()

    def _reconcile(self, client: httpx.Client) -> None:
        for version in self._plan.to_load():
            if self._stopping.is_set():
                return
            self._load(client, version)
        for name in self._plan.to_unload(time.monotonic()):
            if self._stopping.is_set():
                return
            self._unload(client, name)

    def _load(self, client: httpx.Client, event: VersionEvent) -> None:
        name = str(event.model_name)
        body = {"lora_name": name, "lora_path": event.artifact_uri}
        reply = self._post(client, "load_lora_adapter", body)
        if reply is None:
            return
        if reply.is_success or (reply.status_code == 400 and "already" in reply.text):
            if reply.is_success:
                logger.info("fulmen loaded version %s as %s", event.version_id, name)
                self.loaded.append(name)
            self._plan.loaded(name)
            self._acknowledge(event.version_id, name, "loaded")
        else:
            reason = reply.text[:1000]
            logger.error("fulmen could not load %s: %s", name, reason)
            self._plan.failed(name)
            self._acknowledge(event.version_id, name, "failed", reason)

    def _unload(self, client: httpx.Client, name: str) -> None:
        reply = self._post(client, "unload_lora_adapter", {"lora_name": name})
        if reply is None:
            return
        if not reply.is_success and reply.status_code != 404:  # 404: gone already
            logger.error("fulmen could not unload %s: %s", name, reply.text[:300])
            return
        logger.info("fulmen unloaded %s, which no version needs any more", name)
        self.unloaded.append(name)
        self._plan.unloaded(name)
        self._acknowledge(self._plan.version_of(name), name, "unloaded")

    def _post(
        self, client: httpx.Client, route: str, body: dict[str, str | None]
    ) -> httpx.Response | None:
        """The server's answer; None when stopping before it answered (a server that is
        down is retried)."""
        url = f"{self._base_url}/{route}"
        while not self._stopping.is_set():
            try:
                return client.post(url, json=body)
            except httpx.HTTPError as exc:
                logger.warning("fulmen cannot reach %s (retrying): %s", url, exc)
                self._stopping.wait(_RETRY_S)
        return None

    def _acknowledge(
        self, version_id: str, name: str, status: ServingStatus, detail: str | None = None
    ) -> None:
        ack = ServingAck(
            meta=version_meta(),
            replica_id=self.replica_id,
            pool=self.pool,
            version_id=version_id,
            model_name=name,
            status=status,
            detail=detail,
        )
        while not self._stopping.is_set():
            try:
                publish_control(ack, self._settings)
                return
            except FulmenError as exc:
                logger.warning("fulmen could not acknowledge %s (retrying): %s", name, exc)
                self._stopping.wait(_RETRY_S)
