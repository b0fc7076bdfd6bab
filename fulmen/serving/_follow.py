"""The controller beside a model server: every model version published on the control topic
is loaded into the server through vLLM's runtime LoRA API (`POST /v1/load_lora_adapter`),
which vLLM and Fulmen's policy server both answer, so agents can request it by name.

    follower = AdapterFollower("http://127.0.0.1:8000/v1", FulmenSettings())
    follower.start()   # a daemon thread; follower.stop() ends it

Old versions stay loaded (an in-flight rollout may still use one); unloading is left to the
operator (docs/serving.md says when it is safe).
"""

from __future__ import annotations

import logging
import threading

import httpx

from fulmen.producers import FulmenSettings, KafkaControlReader
from fulmen.producers._control import decode_control
from fulmen.producers._control_readers import ControlReader
from fulmen.producers._producer import codec_for
from fulmen.schemas import VersionEvent

logger = logging.getLogger("fulmen.serving")

_POLL_S = 0.5
_RETRY_S = 2.0


class AdapterFollower:
    """Follows the control topic of `settings` (Kafka) from its beginning and loads each
    model version that has an artifact into the server at `base_url` (`…/v1`). A version
    the server already holds (HTTP 400 on a taken name) counts as loaded; a server that is
    down is retried with the same version. `api_key` is sent as `Authorization: Bearer
    <key>` (the server's own key; vLLM's `--api-key`)."""

    def __init__(
        self,
        base_url: str,
        settings: FulmenSettings,
        *,
        reader: ControlReader | None = None,
        api_key: str | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/load_lora_adapter"
        self._topic = settings.topics.for_event("version")
        self._reader = reader or KafkaControlReader(settings.kafka, self._topic)
        self._codec = codec_for(settings)
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fulmen-adapters", daemon=True)
        self.loaded: list[str] = []
        """Model names loaded so far, in order."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        with httpx.Client(timeout=60.0, headers=self._headers) as client:
            try:
                while not self._stopping.is_set():
                    for message in self._reader.read(_POLL_S):
                        event = decode_control(self._codec, self._topic, message)
                        if (
                            isinstance(event, VersionEvent)
                            and event.kind == "model"
                            and event.artifact_uri
                        ):
                            self._load(client, event)
            finally:
                self._reader.close()

    def _load(self, client: httpx.Client, event: VersionEvent) -> None:
        body = {"lora_name": event.model_name, "lora_path": event.artifact_uri}
        while not self._stopping.is_set():
            try:
                reply = client.post(self._url, json=body)
            except httpx.HTTPError as exc:
                logger.warning("fulmen cannot reach %s (retrying): %s", self._url, exc)
                self._stopping.wait(_RETRY_S)
                continue
            if reply.status_code == 400 and "already" in reply.text:
                return
            if reply.is_success:
                logger.info("fulmen loaded version %s as %s", event.version_id, event.model_name)
                self.loaded.append(str(event.model_name))
            else:
                logger.error("fulmen could not load %s: %s", event.model_name, reply.text[:300])
            return
