"""A small OpenAI-compatible chat completions server that answers the way vLLM does.

A test double for a real vLLM server: `POST /v1/chat/completions`, JSON or SSE streaming,
deterministic output, `usage`, per-token `logprobs` when asked for, and vLLM's
`return_token_ids` extension (top-level `prompt_token_ids`, per-choice `token_ids`). Every
request body is recorded in `requests`, every payload sent in `responses`::

    with OpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

ANSWER_TOKENS = ["2", " +", " 2", " =", " 4"]
TOOL_NAME = "calculator"
TOOL_CALL_ID = "call_0"
TOOL_ARGUMENT_TOKENS = ['{"expression"', ': "', "2 + 2", '"}']

Json = dict[str, Any]


class OpenAIServer:
    """Runs in a background thread on 127.0.0.1, on a free port, while entered.

    Replies `2 + 2 = 4`, or a call to the `calculator` tool when the request has `tools`;
    with `reply`, the text `reply(request)` returns (a scripted model of a multi-turn
    agent). Set `fail_status` to answer every request with that HTTP status and an OpenAI
    error body.
    """

    def __init__(
        self, *, fail_status: int | None = None, reply: Callable[[Json], str] | None = None
    ) -> None:
        self.fail_status = fail_status
        self.reply = reply
        self.requests: list[Json] = []
        self.responses: list[Json | list[Json]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.01)

    def _record(self, request: Json, response: Json | list[Json]) -> None:
        with self._lock:
            self.requests.append(request)
            self.responses.append(response)


def prompt_token_ids(request: Json) -> list[int]:
    """The "tokenization" of a prompt: the UTF-8 bytes of its messages' text contents."""
    text = "".join(str(m.get("content") or "") for m in request.get("messages", []))
    return list(text.encode())


def token_id(token: str) -> int:
    """A deterministic id per token text."""
    return 1000 + sum(token.encode()) % 1000


def logprob_of(position: int) -> float:
    return -0.125 * (position + 1)


class _Completion:
    """The deterministic answer to one request, as tokens."""

    def __init__(self, request: Json, reply: Callable[[Json], str] | None = None) -> None:
        self.request = request
        self.model = str(request.get("model", ""))
        self.uses_tool = bool(request.get("tools"))
        self.tokens = TOOL_ARGUMENT_TOKENS if self.uses_tool else ANSWER_TOKENS
        if reply is not None:
            self.tokens = re.findall(r"\S+|\s+", reply(request))
        self.finish_reason = "tool_calls" if self.uses_tool else "stop"
        self.logprobs = bool(request.get("logprobs"))
        self.token_ids = bool(request.get("return_token_ids"))
        self.prompt_ids = prompt_token_ids(request)

    def usage(self) -> Json:
        prompt, completion = len(self.prompt_ids), len(self.tokens)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def logprob_entries(self, start: int, tokens: list[str]) -> list[Json]:
        return [
            {
                "token": token,
                "logprob": logprob_of(start + i),
                "bytes": list(token.encode()),
                "top_logprobs": [],
            }
            for i, token in enumerate(tokens)
        ]

    def tool_call(self, arguments: str, *, first: bool) -> Json:
        call: Json = {"index": 0, "function": {"arguments": arguments}}
        if first:
            call.update(id=TOOL_CALL_ID, type="function")
            call["function"]["name"] = TOOL_NAME
        return call

    def completion(self) -> Json:
        text = "".join(self.tokens)
        message: Json = {"role": "assistant", "content": None if self.uses_tool else text}
        if self.uses_tool:
            call = self.tool_call(text, first=True)
            del call["index"]
            message["tool_calls"] = [call]
        choice: Json = {
            "index": 0,
            "message": message,
            "finish_reason": self.finish_reason,
            "logprobs": None,
        }
        if self.logprobs:
            choice["logprobs"] = {"content": self.logprob_entries(0, self.tokens)}
        if self.token_ids:
            choice["token_ids"] = [token_id(t) for t in self.tokens]
        body: Json = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(),
        }
        if self.token_ids:
            body["prompt_token_ids"] = self.prompt_ids
        return body

    def chunks(self) -> list[Json]:
        first_delta: Json = {"role": "assistant", "content": ""}
        if self.uses_tool:
            first_delta = {"role": "assistant", "tool_calls": [self.tool_call("", first=True)]}
        chunks = [self.chunk(first_delta)]
        if self.token_ids:
            chunks[0]["prompt_token_ids"] = self.prompt_ids
        for position, token in enumerate(self.tokens):
            if self.uses_tool:
                delta: Json = {"tool_calls": [self.tool_call(token, first=False)]}
            else:
                delta = {"content": token}
            chunk = self.chunk(delta)
            choice = chunk["choices"][0]
            if self.logprobs:
                choice["logprobs"] = {"content": self.logprob_entries(position, [token])}
            if self.token_ids:
                choice["token_ids"] = [token_id(token)]
            chunks.append(chunk)
        chunks.append(self.chunk({}, finish_reason=self.finish_reason))
        if (self.request.get("stream_options") or {}).get("include_usage"):
            chunks.append({**self.chunk({}), "choices": [], "usage": self.usage()})
        return chunks

    def chunk(self, delta: Json, *, finish_reason: str | None = None) -> Json:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            length = int(self.headers.get("Content-Length", "0"))
            request: Json = json.loads(self.rfile.read(length) or b"{}")
            if server.fail_status is not None:
                error = {"error": {"message": "boom", "type": "server_error", "code": None}}
                server._record(request, error)
                self._send_json(server.fail_status, error)
                return
            answer = _Completion(request, server.reply)
            if request.get("stream"):
                chunks = answer.chunks()
                server._record(request, chunks)
                self._send_stream(chunks)
            else:
                body = answer.completion()
                server._record(request, body)
                self._send_json(200, body)

        def _send_json(self, status: int, body: Json) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_stream(self, chunks: list[Json]) -> None:
            # HTTP/1.0 without Content-Length: the body ends when the connection closes.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    return Handler
