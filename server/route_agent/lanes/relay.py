"""A loopback relay between an external agent and its lane's model: the agent never holds the key, every
request it sends goes through the outbound gate, and every call is metered and budgeted.

    with ModelRelay(upstream="https://openrouter.ai/api/v1", key=key, spec=spec, guard=guard, task=task) as relay:
        ...   # give the agent relay.base_url ("http://127.0.0.1:<port>/v1") and relay.token as its key
    relay.calls                          # one RelayCall per model call: tokens, cost, estimated or not
    relay.input_tokens, .output_tokens, .cost_usd, .estimated, .redactions

An external agent (aider, mini-swe-agent, ...) talks to its model itself, so without a relay
route-agent sees none of its calls: not what they cost, not what they send. The relay listens on
127.0.0.1 only, for the length of one attempt, and:
- accepts a request only with the attempt's own random token (`Authorization: Bearer <token>` or
  `x-api-key: <token>`), so no other local process can spend through it, and replaces the token with
  the lane's real key on the way out: the key never enters the sandbox;
- passes every JSON request body through `guard_request` (outbound.py), the gate every lane request
  goes through: never-send sections withheld, secrets redacted, before anything leaves the machine;
- refuses a call once the per-task or per-day budget is spent (HTTP 402 with a message the agent
  shows), as the lane client does; nothing is switched to a cheaper model;
- streams the answer back unchanged, reading the `usage` the server reports (OpenAI's last chunk,
  OpenRouter's, Anthropic's `message_start`/`message_delta`) or, without one, estimating tokens from
  what was sent and received (marked estimated, as for lane calls).
It forwards any path under the base URL (`/v1/chat/completions`, `/v1/messages`, `/v1/models`, ...);
only answers that carry usage or a completion are counted as model calls.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from route_agent.lanes.budget import BudgetGuard, TaskSpend
from route_agent.lanes.errors import LaneError
from route_agent.lanes.estimate import cost_usd
from route_agent.lanes.outbound import guard_request
from route_agent.lanes.tls import shared_tls_context
from route_agent.policy.models import ModelSpec

__all__ = ["ModelRelay", "RelayCall"]

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
MAX_REQUEST_BYTES = 16 * 1024 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding",
               "upgrade", "host", "content-length", "authorization", "x-api-key", "accept-encoding"}
_SENT_BACK = ("content-type", "retry-after", "x-request-id", "openai-processing-ms")


@dataclass
class RelayCall:
    """One request the agent made through the relay."""

    path: str
    status: int
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    estimated: bool = False
    duration_s: float = 0.0
    redactions: int = 0
    model_call: bool = False
    """True for an answer that carried usage or a completion (what the ledger counts as a step)."""
    refused: str | None = None


@dataclass
class _Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    text_chars: int = 0
    completion: bool = False

    def read(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        message = payload.get("message")
        for usage in (payload.get("usage"), message.get("usage") if isinstance(message, dict) else None):
            if isinstance(usage, dict):
                prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
                completion = usage.get("completion_tokens", usage.get("output_tokens"))
                if isinstance(prompt, int) and prompt > 0:
                    self.input_tokens = prompt
                if isinstance(completion, int):
                    self.output_tokens = completion
        for choice in payload.get("choices") or ():
            if isinstance(choice, dict):
                self.completion = True
                for part in (choice.get("delta"), choice.get("message")):
                    if isinstance(part, dict) and isinstance(part.get("content"), str):
                        self.text_chars += len(part["content"])
        if payload.get("type") in ("message_start", "content_block_delta", "message") or ("content" in payload and "role" in payload):
            self.completion = True
        delta = payload.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("text"), str):
            self.text_chars += len(delta["text"])


class ModelRelay:
    def __init__(self, upstream: str, key: str | None, spec: ModelSpec, *, guard: BudgetGuard | None = None,
                 task: TaskSpend | None = None, on_call: Callable[[RelayCall], None] | None = None,
                 transport: httpx.BaseTransport | None = None, timeout_s: float | None = None) -> None:
        if not upstream.startswith(("http://", "https://")):
            raise LaneError("config", f"base_url {upstream!r} of model {spec.model!r} must start with http:// or https://")
        self.upstream = upstream.rstrip("/")
        self.spec = spec
        self.token = "route-agent-relay-" + secrets.token_urlsafe(24)
        self.calls: list[RelayCall] = []
        self._key = key
        self._guard = guard
        self._task = task if task is not None else TaskSpend()
        self._on_call = on_call
        self._lock = threading.Lock()
        self._http = httpx.Client(transport=transport, follow_redirects=False, headers={"User-Agent": "route-agent relay"},
                                  verify=shared_tls_context(),
                                  timeout=httpx.Timeout(timeout_s or spec.timeout_s, connect=30.0))
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="route-agent-relay", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> ModelRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._http.close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # -- totals --------------------------------------------------------------------------------
    @property
    def model_calls(self) -> list[RelayCall]:
        with self._lock:
            return [c for c in self.calls if c.model_call]

    @property
    def input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.model_calls)

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.model_calls)

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.model_calls)

    @property
    def estimated(self) -> bool:
        return any(c.estimated for c in self.model_calls)

    @property
    def redactions(self) -> int:
        with self._lock:
            return sum(c.redactions for c in self.calls)

    # -- one request ---------------------------------------------------------------------------
    def _record(self, call: RelayCall) -> None:
        with self._lock:
            self.calls.append(call)
        if call.model_call and self._guard is not None:
            self._guard.record_after(self._task, call.cost_usd, self.spec.model)
        if self._on_call is not None:
            self._on_call(call)

    def _refusal(self) -> str | None:
        if self._guard is None:
            return None
        try:
            self._guard.check_before(self._task, 0.0, self.spec.model)
        except LaneError as exc:
            return str(exc)
        return None

    def handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        """One request from the agent: admitted, gated, budgeted, forwarded, metered."""
        started = time.monotonic()
        path = h.path
        refusal = self._admit(h, path)
        if refusal is not None:
            _send_error(h, *refusal)
            return
        request = _Request()
        if method == "POST":
            problem = _read_body(h, path, request)
            if problem is not None:
                _send_error(h, *problem)
                return
            spent = self._refusal()
            if spent is not None:
                _send_error(h, 402, f"route-agent: {spent}")
                self._record(RelayCall(path, 402, refused=spent, redactions=request.redactions, duration_s=time.monotonic() - started))
                return
        usage = _Usage()
        try:
            status = self._forward(h, method, path, request.body, usage)
        except httpx.HTTPError as exc:
            _send_error(h, 502, f"route-agent relay: the model server at {self.upstream} could not be reached: {type(exc).__name__}")
            status = 502
        self._record(self._metered(RelayCall(path, status, redactions=request.redactions, duration_s=time.monotonic() - started),
                                   usage, request.chars))

    def _admit(self, h: http.server.BaseHTTPRequestHandler, path: str) -> tuple[int, str] | None:
        if not path.startswith("/v1/") and path != "/v1":
            return 404, f"route-agent relay: only paths under /v1 are relayed, not {path!r}"
        supplied = h.headers.get("x-api-key") or h.headers.get("authorization", "").removeprefix("Bearer ").strip()
        # Without a key (a local model server) there is nothing to spend or steal: no token is asked for.
        if self._key and not secrets.compare_digest(supplied.encode(), self.token.encode()):
            return 401, "route-agent relay: this request does not carry the attempt's token"
        return None

    def _forward(self, h: http.server.BaseHTTPRequestHandler, method: str, path: str, body: bytes | None, usage: _Usage) -> int:
        """Send the request on with the lane's key and stream the answer back; returns the status."""
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP}
        if self._key:
            if h.headers.get("x-api-key"):
                headers["x-api-key"] = self._key
            else:
                headers["Authorization"] = f"Bearer {self._key}"
        with self._http.stream(method, self.upstream + path[len("/v1"):], content=body, headers=headers) as response:
            h.send_response(response.status_code)
            for name in _SENT_BACK:
                if name in response.headers:
                    h.send_header(name, response.headers[name])
            h.send_header("Connection", "close")
            h.end_headers()
            streamed = "text/event-stream" in response.headers.get("content-type", "")
            whole = bytearray()
            try:
                for chunk in _lines_or_chunks(response, streamed):
                    h.wfile.write(chunk)
                    h.wfile.flush()
                    if streamed:
                        _read_sse_line(chunk, usage)
                    elif len(whole) < MAX_REQUEST_BYTES:
                        whole += chunk
            except (BrokenPipeError, ConnectionResetError):
                return 499  # the agent hung up; what the server reported so far is still counted
            if whole:
                with contextlib.suppress(ValueError):
                    usage.read(json.loads(bytes(whole)))
            return response.status_code

    def _metered(self, call: RelayCall, usage: _Usage, request_chars: int) -> RelayCall:
        """Tokens and cost from the answer's usage, else estimated from what was sent and received."""
        if call.status >= 400 or not (usage.completion or usage.input_tokens is not None):
            return call
        call.model_call = True
        if usage.input_tokens is not None and usage.output_tokens is not None:
            call.input_tokens, call.output_tokens = usage.input_tokens, usage.output_tokens
        else:
            call.estimated = True
            call.input_tokens = usage.input_tokens or (request_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
            call.output_tokens = usage.output_tokens if usage.output_tokens is not None else \
                min(self.spec.max_output_tokens, (usage.text_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)
        call.cost_usd = cost_usd(self.spec, call.input_tokens, call.output_tokens)
        return call


@dataclass
class _Request:
    body: bytes | None = None
    redactions: int = 0
    chars: int = 0


def _read_body(h: http.server.BaseHTTPRequestHandler, path: str, request: _Request) -> tuple[int, str] | None:
    """Read the agent's JSON body and pass it through the outbound gate; an error to send back, or None."""
    length = int(h.headers.get("content-length") or 0)
    if length > MAX_REQUEST_BYTES:
        return 413, f"route-agent relay: a request of {length} bytes is over the {MAX_REQUEST_BYTES} byte limit"
    raw = h.rfile.read(length)
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        return 400, "route-agent relay: the request body is not JSON, so it cannot be checked before it is sent"
    if isinstance(payload, dict):
        if payload.get("stream") is True and "messages" in payload and path.endswith("/chat/completions"):
            payload.setdefault("stream_options", {"include_usage": True})
        guarded = guard_request(payload)
        request.redactions = len(guarded.notes)
        payload = guarded.body
        request.chars = sum(len(json.dumps(m)) for m in payload.get("messages") or ())
    request.body = json.dumps(payload).encode() if raw else None
    return None


def _lines_or_chunks(response: httpx.Response, streamed: bool) -> Iterator[bytes]:
    if not streamed:
        yield from response.iter_bytes()
        return
    pending = b""
    for chunk in response.iter_bytes():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


def _read_sse_line(line: bytes, usage: _Usage) -> None:
    text = line.strip()
    if not text.startswith(b"data:"):
        return
    data = text[5:].strip()
    if not data or data == b"[DONE]":
        return
    try:
        usage.read(json.loads(data))
    except ValueError:
        return


def _send_error(h: http.server.BaseHTTPRequestHandler, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "route_agent_relay", "code": status}}).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.send_header("Connection", "close")
    h.end_headers()
    try:
        h.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # An agent killed mid-call, or the relay closed under a call: the call is simply over.
        log.debug("relay: a request from %s ended abruptly", client_address, exc_info=True)


def _handler_for(relay: ModelRelay) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        server_version = "route-agent-relay"

        def do_POST(self) -> None:
            relay.handle(self, "POST")

        def do_GET(self) -> None:
            relay.handle(self, "GET")

        def log_message(self, format: str, *args: Any) -> None:
            return  # the relay's calls are recorded, not printed

    return Handler

