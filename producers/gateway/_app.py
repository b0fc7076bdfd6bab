"""The gateway: an OpenAI-compatible HTTP proxy in front of a model server that records
every call of a rollout as a span, and takes rollout lifecycle and rewards over HTTP.

Routes (every path may start with the identity prefix of `_identity`):

* `POST …/v1/chat/completions`, `POST …/v1/completions`: forwarded and, within a rollout,
  recorded (see `_record`); streamed responses are relayed as they arrive (`_relay`).
* any other `…/v1/…` (`GET /v1/models`, …): forwarded unchanged, not recorded.
* `POST /rollouts` (a new rollout id) or `POST /rollouts/{id}[/attempts/{n}]/start`,
  `…/finish`, `…/rewards`, `…/feedback`: lifecycle, reward and feedback events (`_rollouts`).
* `GET /metrics`: the producer's delivery figures for Prometheus (`ProducerCollector`).
* `GET /health`, `GET /fulmen/stats` (counters, the producer's delivery figures, the
  versions in force).

With API keys configured (`GatewaySettings.api_keys`, `api_key_file`), every route but
`GET /health` answers 401 without `Authorization: Bearer <key>` (`fulmen.auth`).

Upstream answers pass through unchanged (status, headers, body), errors included; those
and unreachable upstreams (502/504) are counted and recorded as error spans.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import orjson
import uuid_utils
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from fulmen.auth import RequireApiKey
from fulmen.producers._control import VersionFollower, start_following
from fulmen.producers._llm_calls import Operation
from fulmen.producers._metrics import ProducerCollector
from fulmen.producers._producer import Producer
from fulmen.producers._resources import Resources, VersionState
from fulmen.producers.gateway._admission import Admission, GatewayStats
from fulmen.producers.gateway._identity import BadIdentity, Identity, parse_path, with_headers
from fulmen.producers.gateway._record import CallRecord, error_message
from fulmen.producers.gateway._relay import Relay, RelayResponse
from fulmen.producers.gateway._rewrite import Added, dumps_like, rewrite, strip
from fulmen.producers.gateway._rollouts import (
    FinishRollout,
    PostFeedback,
    PostReward,
    RolloutLifecycle,
    StartRollout,
)
from fulmen.producers.gateway._settings import GatewaySettings
from fulmen.producers.gateway._upstream import (
    UpstreamClient,
    UpstreamError,
    forwarded_headers,
    gateway_error,
    unreachable,
    upstream_path,
)

logger = logging.getLogger("fulmen.gateway")

_OPERATIONS: dict[str, Operation] = {"chat/completions": "chat", "completions": "text_completion"}


class Gateway:
    """The gateway's state: settings, the producer its events go through, the versions in
    force per agent (followed on the control topic), the upstream client and the counters.

    `producer` is the gateway's own (not the process-wide SDK producer); the gateway follows
    the control topic on its transport and closes both in `close`.

    Raises:
        AuthError: the settings' key file cannot be read, or a key is malformed.
    """

    def __init__(self, settings: GatewaySettings, producer: Producer) -> None:
        self.settings = settings
        self.keys = settings.load_api_keys()
        self.producer = producer
        self.stats = GatewayStats()
        self._registry = CollectorRegistry()
        self._registry.register(ProducerCollector(producer))
        self.versions = VersionState(
            producer.versions.initial,
            agent_name=producer.agent_name,
            max_agents=settings.max_agents,
            await_replicas=producer.settings.producer.await_replicas,
            pool=producer.settings.producer.serving_pool,
        )
        self._admission = Admission(settings.max_in_flight, self.stats)
        self._rollouts = RolloutLifecycle(
            producer, self.versions, max_open=settings.max_open_rollouts
        )
        self._follower: VersionFollower | None = None
        self._client: UpstreamClient | None = None

    def follow_versions(self, timeout_s: float) -> bool:
        """Start following the control topic; True once the versions already published are
        applied (False: not within `timeout_s`, they apply when the topic can be read)."""
        if self._follower is None:
            self._follower = start_following(self.producer, versions=self.versions)
        return self._follower is None or self._follower.wait_caught_up(timeout_s)

    def app(self) -> Starlette:
        """The ASGI app (one per gateway). Its lifespan opens and closes the upstream
        client; run it with lifespan on (`serve_gateway` and `gateway_in_thread` do). With
        keys, requests other than `GET /health` need one of them."""
        routes = [
            StarletteRoute("/health", self._health, methods=["GET"]),
            StarletteRoute("/fulmen/stats", self._stats, methods=["GET"]),
            StarletteRoute("/metrics", self._metrics, methods=["GET"]),
            StarletteRoute(
                "/{path:path}", self._dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
            ),
        ]
        middleware: list[Middleware] = []
        if self.keys.required:
            middleware.append(Middleware(RequireApiKey, keys=self.keys, open_paths={"/health"}))
        return Starlette(routes=routes, middleware=middleware, lifespan=self._lifespan)

    def close(self, timeout_s: float | None = None) -> None:
        """Stop following versions; deliver or spill the events emitted so far."""
        if self._follower is not None:
            self._follower.stop()
        self.producer.close(timeout_s)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._client = UpstreamClient(self.settings)
        try:
            yield
        finally:
            await self._client.close()
            self._client = None

    async def _health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def _stats(self, request: Request) -> Response:
        own = self.versions.current
        return JSONResponse(
            {
                "gateway": self.stats.as_dict(),
                "producer": asdict(self.producer.stats()),
                "versions": {
                    "model_version": own.model_version,
                    "resources_version": own.resources_version,
                    "model_name": own.model_name,
                },
            }
        )

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)

    async def _dispatch(self, request: Request) -> Response:
        try:
            route = parse_path(request.path_params["path"])
            identity = with_headers(route.identity, request.headers)
        except BadIdentity as exc:
            return gateway_error(400, str(exc), code="bad_identity")
        rest = route.rest
        path = upstream_path(rest)
        if path is not None:
            return await self._forward(request, identity, path)
        if request.method == "POST" and rest in ("", "start", "finish", "rewards", "feedback"):
            return await self._lifecycle(request, identity, rest)
        return gateway_error(404, f"no route {request.method} /{rest}", code="not_found")

    # -- rollout lifecycle -------------------------------------------------------------------

    async def _lifecycle(self, request: Request, identity: Identity, action: str) -> Response:
        if action == "":
            if identity.rollout_id is not None:
                return gateway_error(404, "POST /rollouts/{id} needs an action", code="not_found")
            identity = Identity(str(uuid_utils.uuid7()), 1, identity.agent_name)
            action = "start"
        if identity.rollout_id is None:
            return gateway_error(400, f"{action} needs a rollout id", code="bad_identity")
        raw = await request.body()
        try:
            if action == "start":
                self._rollouts.start(identity, StartRollout.model_validate_json(raw or b"{}"))
            elif action == "finish":
                self._rollouts.finish(identity, FinishRollout.model_validate_json(raw or b"{}"))
            elif action == "feedback":
                self._rollouts.feedback(identity, PostFeedback.model_validate_json(raw))
            else:
                self._rollouts.reward(identity, PostReward.model_validate_json(raw))
        except ValueError as exc:  # the body, or the event built from it (a 400, never a 500)
            return gateway_error(400, f"invalid {action} body: {exc}", code="invalid_body")
        prefix = f"rollouts/{identity.rollout_id}/attempts/{identity.attempt}"
        if identity.agent_name is not None:
            prefix = f"agents/{identity.agent_name}/{prefix}"
        trace_id = identity.active().trace_id
        base_url = f"{str(request.base_url).rstrip('/')}/{prefix}/v1"
        body = {
            "rollout_id": identity.rollout_id,
            "attempt": identity.attempt,
            "trace_id": trace_id,
            "base_url": base_url,
        }
        return JSONResponse(body, status_code=201 if action == "start" else 200)

    # -- forwarding --------------------------------------------------------------------------

    async def _forward(self, request: Request, identity: Identity, path: str) -> Response:
        if not self._admission.enter():
            return gateway_error(
                503,
                f"the gateway has {self.settings.max_in_flight} calls in flight; retry later",
                code="overloaded",
                headers={"retry-after": str(self.settings.retry_after_s)},
            )
        held = True
        try:
            raw = await _read_body(request, self.settings.max_request_bytes)
            if raw is None:
                return gateway_error(413, "request body too large", code="too_large")
            operation = _OPERATIONS.get(path) if request.method == "POST" else None
            call = self._prepare(identity, operation, raw)
            response = await self._send(request, path, call)
            held = isinstance(response, RelayResponse) is False
            return response
        finally:
            if held:
                self._admission.leave()

    def _prepare(self, identity: Identity, operation: Operation | None, raw: bytes) -> _Call:
        """The body to send and, within a rollout, the record of the call."""
        if operation is None:
            return _Call(raw, None, Added())
        self.stats.calls += 1
        body = _json_object(raw)
        if body is None:  # the upstream answers what is wrong with it
            return _Call(raw, None, Added())
        resources: Resources = self.versions.for_agent(identity.agent_name, identity.rollout_id)
        recording = identity.rollout_id is not None
        rewritten = rewrite(body, operation, resources, self.settings, capture=recording)
        content = _dumps(rewritten.body) if rewritten.changed else raw
        if not recording:
            self.stats.unattributed += 1
            return _Call(content, None, rewritten.added)
        self.stats.recorded += 1
        record = CallRecord(
            self.producer, identity.active(), resources, operation, rewritten.body, self.versions
        )
        return _Call(content, record, rewritten.added)

    async def _send(self, request: Request, path: str, call: _Call) -> Response:
        assert self._client is not None, "the gateway app runs with its lifespan"
        record = call.record
        try:
            upstream = await self._client.send(
                request.method,
                path,
                request.scope["query_string"].decode("latin-1"),
                forwarded_headers(
                    request.headers.items(), client_key=self.settings.forward_client_key
                ),
                call.content,
            )
        except UpstreamError as exc:
            self.stats.upstream_errors += 1
            answer = unreachable(exc)
            if record is not None:
                record.status(answer.status_code)
                record.finish(f"upstream unreachable: {exc}")
            return answer
        if record is not None:
            record.status(upstream.status)
        headers = upstream.headers()
        if upstream.status < 400 and upstream.is_stream:
            relay = Relay(
                upstream, record, call.added, stats=self.stats, on_close=self._admission.leave
            )
            return RelayResponse(relay, status_code=upstream.status, headers=headers)
        try:
            content = await upstream.read()
        except UpstreamError as exc:
            self.stats.upstream_errors += 1
            if record is not None:
                record.finish(str(exc))
            return unreachable(exc)
        finally:
            upstream.close()
        if upstream.status >= 400:
            self.stats.upstream_errors += 1
            return _response(content, upstream.status, headers, record, None, error=True)
        parsed = _json_object(content) if record is not None or call.added.any else None
        if parsed is not None and call.added.any:
            stripped = strip(parsed, call.added, chunk=False)
            assert stripped is not None
            content = dumps_like(stripped, content)
        return _response(content, upstream.status, headers, record, parsed, error=False)


class _Call:
    """What to forward, and how to record and restore its answer."""

    __slots__ = ("added", "content", "record")

    def __init__(self, content: bytes, record: CallRecord | None, added: Added) -> None:
        self.content = content
        self.record = record
        self.added = added


def _response(
    content: bytes,
    status: int,
    headers: list[tuple[bytes, bytes]],
    record: CallRecord | None,
    parsed: dict[str, Any] | None,
    *,
    error: bool,
) -> Response:
    """The agent's response; the call is recorded after it was sent."""
    response = Response(content, status_code=status)
    response.raw_headers = [*response.raw_headers, *headers]
    if record is not None:
        response.background = BackgroundTask(_finish, record, content, status, parsed, error)
    return response


async def _finish(
    record: CallRecord, content: bytes, status: int, parsed: dict[str, Any] | None, error: bool
) -> None:
    """Record a non-streamed call. A coroutine, so that Starlette runs it on the event loop
    rather than handing it to a worker thread (what it does with plain functions)."""
    if error:
        record.finish(error_message(status, content))
        return
    if parsed is None:
        record.finish("the upstream's answer is not a JSON object")
        return
    try:
        record.completion(parsed)
    except Exception as exc:  # a malformed answer is the upstream's problem, not the agent's
        logger.warning("fulmen gateway could not read an upstream completion: %r", exc)
        record.finish(f"unreadable completion: {exc!r}")
        return
    record.finish()


def _dumps(body: dict[str, Any]) -> bytes:
    """The request body for the upstream (compact UTF-8, the style is nobody's business)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:  # integers beyond 64 bits, which json writes as they came
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _json_object(content: bytes) -> dict[str, Any] | None:
    """`content` parsed, when it is a JSON object. orjson (a fifth of json's CPU on these
    bodies) first; json for what orjson refuses and Python reads (integers beyond 64 bits,
    NaN), so that such calls are still recorded."""
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        try:
            parsed = json.loads(content)
        except ValueError:
            return None
    return parsed if isinstance(parsed, dict) else None


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)
