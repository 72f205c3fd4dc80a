"""A scripted OpenAI-compatible chat completions server on 127.0.0.1, for tests and benchmarks.

It is a real HTTP/1.1 server (stdlib `ThreadingHTTPServer`, one thread per connection, keep-alive,
chunked transfer encoding for streams), so the client under test goes through real sockets, real
SSE framing and real connection failures: a stream "cut midway" is a socket closed inside a chunk,
a clean close without `[DONE]` is a properly terminated chunked body.

Behaviour is chosen per model name. Built-in names:

    good-patch          a reply holding a fenced ```diff block (script `reply` to give the diff)
    bad-patch           a diff whose context matches nothing
    search-replace      a SEARCH/REPLACE block
    rate-limit-then-ok  429 with Retry-After: 1 once, then a normal reply
    rate-limit-long     429 with Retry-After: 86400
    auth-fail           401
    server-error        500 every time
    cut-midway          some content, then the socket is closed inside the chunked body
    no-done             content and finish_reason, then a clean close without `data: [DONE]`
    error-event         HTTP 200 whose stream carries `data: {"error": ...}`
    keepalive-only      `: keep-alive` comments only, every 50 ms, for `duration` seconds
    html-200            an HTML page with status 200
    slow-first-byte     waits `delay` seconds (default 2) before the status line
    hang                one content delta, then keep-alives until the client goes away
                        (records the disconnect; used by cancellation tests)
    length              content, then finish_reason "length"

Script `mode="endless"` to stream `delta_bytes` (default 65536) of content per event until `total`
bytes (default 1 GiB) were sent or the client goes away (recorded in `.disconnects`), and
`no_usage=True` to leave out the usage event a client asks for.

Script `mode="json"` to answer a streaming request with a plain JSON completion.

Any other name answers "Hello from the fake model." A test scripts a model with
`FakeLLMServer.script(model, reply=..., status=..., mode=..., times=...)` in process, or over HTTP
with `POST /_script {"model": {...}}`; the received requests are in `.requests` (or
`GET /_requests`). Run it alone with `python tests/fakeserver/server.py [--port N]`: it prints the
port on its first line.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_PATCH = """Here is the fix.

```diff
--- a/hello.txt
+++ b/hello.txt
@@ -1 +1 @@
-hello
+hello, world
```
"""

BAD_PATCH = """```diff
--- a/hello.txt
+++ b/hello.txt
@@ -1,2 +1,2 @@
-this line is not in the file
-nor is this one
+replacement
+lines
```
"""

SEARCH_REPLACE = """hello.txt
<<<<<<< SEARCH
hello
=======
hello, world
>>>>>>> REPLACE
"""

DEFAULT_REPLY = "Hello from the fake model."

BUILTIN: dict[str, dict[str, Any]] = {
    "good-patch": {"reply": GOOD_PATCH},
    "bad-patch": {"reply": BAD_PATCH},
    "search-replace": {"reply": SEARCH_REPLACE},
    "rate-limit-then-ok": {"status": 429, "retry_after": "1", "times": 1},
    "rate-limit-long": {"status": 429, "retry_after": "86400"},
    "auth-fail": {"status": 401, "error": "Incorrect API key provided"},
    "server-error": {"status": 500, "error": "internal error"},
    "cut-midway": {"mode": "cut", "reply": GOOD_PATCH},
    "no-done": {"mode": "no-done", "reply": GOOD_PATCH},
    "error-event": {"mode": "error-event", "reply": "partial "},
    "keepalive-only": {"mode": "keepalive-only", "duration": 3.0},
    "html-200": {"mode": "html"},
    "slow-first-byte": {"delay": 2.0},
    "hang": {"mode": "hang", "duration": 10.0},
    "length": {"finish_reason": "length", "reply": "```diff\n--- a/hello.txt\n"},
}


@dataclass
class RecordedRequest:
    path: str
    model: str
    body: str
    """The request body exactly as received (decoded as UTF-8 with replacement)."""
    headers: dict[str, str]
    json: dict[str, Any] = field(default_factory=dict)


class FakeLLMServer:
    """Owns the HTTP server thread, the scripts and what was received."""

    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[dict[str, Any]]] = {}
        self._served: dict[str, int] = {}
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[tuple[str, float]] = []
        self.stopping = threading.Event()
        handler = type("BoundHandler", (_Handler,), {"fake": self})
        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 256})  # 50+ concurrent clients connect at once
        self._httpd = server_class(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeLLMServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------
    def script(self, model: str, *, then: dict[str, Any] | None = None, **behaviour: Any) -> None:
        """Script `model`: keys reply, replies (a list: one per request, in order, then the last
        again; for agent sessions), status, mode, retry_after, error, delay, duration,
        finish_reason, usage, chunks, headers, content_type, times. With `times=N` the behaviour
        applies to the next N requests, then `then` (default: a normal reply of `reply`)."""
        with self._lock:
            steps = [dict(behaviour)]
            if then is not None:
                steps.append(dict(then))
            self._scripts[model] = steps
            self._served[model] = 0

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._served.clear()
            self.requests.clear()
            self.disconnects.clear()

    def bodies(self) -> list[str]:
        with self._lock:
            return [r.body for r in self.requests]

    def behaviour_for(self, model: str) -> dict[str, Any]:
        with self._lock:
            steps = self._scripts.get(model)
            if steps is None:
                steps = [dict(BUILTIN.get(model, {}))]
                self._scripts[model] = steps
                self._served[model] = 0
            served = self._served[model]
            self._served[model] = served + 1
            first = steps[0]
            if "replies" in first:
                # A scripted conversation: the n-th request gets the n-th reply, then the last one again.
                replies = list(first["replies"])
                return {**{k: v for k, v in first.items() if k != "replies"}, "reply": replies[min(served, len(replies) - 1)]}
            times = first.get("times")
            if times is None or served < times:
                return first
            if len(steps) > 1:
                return steps[1]
            # after `times` scripted failures: a normal reply with the same content
            return {"reply": first.get("reply", BUILTIN.get(model, {}).get("reply", DEFAULT_REPLY))}

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def record_disconnect(self, model: str) -> None:
        with self._lock:
            self.disconnects.append((model, time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLMServer
    protocol_version = "HTTP/1.1"
    server_version = "fake-llm/1"

    def setup(self) -> None:
        super().setup()
        # Like real servers: no Nagle delay between the small writes of a stream.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read .requests instead

    # -- plumbing --------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, payload: Any) -> None:
        self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    # -- routes ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path == "/_requests":
            self._send_json(200, [{"path": r.path, "model": r.model, "body": r.body} for r in self.fake.requests])
        elif self.path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in BUILTIN]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        raw = self._read_body()
        if self.path == "/_script":
            for model, behaviour in json.loads(raw or b"{}").items():
                self.fake.script(model, **behaviour)
            self._send_json(200, {"ok": True})
            return
        if self.path == "/_reset":
            self.fake.reset()
            self._send_json(200, {"ok": True})
            return
        if self.path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_json(400, {"error": {"message": "body is not JSON"}})
            return
        model = str(body.get("model", ""))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake.record(RecordedRequest(self.path, model, raw.decode("utf-8", "replace"), headers, body))
        behaviour = self.fake.behaviour_for(model)
        try:
            self._complete(model, body, behaviour)
        except (BrokenPipeError, ConnectionResetError):
            self.fake.record_disconnect(model)
            self.close_connection = True

    def _complete(self, model: str, body: dict[str, Any], b: dict[str, Any]) -> None:
        delay = float(b.get("delay", 0))
        if delay:
            # sleep in small steps so that a stopping server does not wait out the delay
            end = time.monotonic() + delay
            while time.monotonic() < end and not self.fake.stopping.is_set():
                time.sleep(0.02)
        status = int(b.get("status", 200))
        if status != 200:
            headers = dict(b.get("headers", {}))
            if "retry_after" in b:
                headers["Retry-After"] = str(b["retry_after"])
            self._send_json(status, {"error": {"message": b.get("error", f"scripted status {status}"), "code": status}}, headers)
            return
        mode = b.get("mode", "ok")
        if mode == "html":
            page = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        reply = str(b.get("reply", DEFAULT_REPLY))
        finish = str(b.get("finish_reason", "stop"))
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []) if isinstance(m, dict))
        usage: dict[str, Any] = {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": max(1, len(reply) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if isinstance(body.get("usage"), dict) and body["usage"].get("include"):
            usage["cost"] = 0.0001234
        usage.update(b.get("usage", {}))
        if not body.get("stream") or mode == "json":
            self._send_json(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": finish}],
                "usage": usage,
            })
            return
        self.send_response(200)
        self.send_header("Content-Type", str(b.get("content_type", "text/event-stream")))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model}
        if mode == "keepalive-only":
            self._keepalives(model, float(b.get("duration", 3.0)))
            self._end_chunks()
            return
        if mode == "endless":
            self._endless(model, base, int(b.get("total", 1 << 30)), int(b.get("delta_bytes", 65536)))
            return
        pieces = _split(reply, int(b.get("chunks", 4)))
        if mode == "hang":
            self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": pieces[0]}, "finish_reason": None}]})
            self._keepalives(model, float(b.get("duration", 10.0)))
            self._end_chunks()
            return
        if mode == "cut":
            half = pieces[: max(1, len(pieces) // 2)]
            for piece in half:
                self._event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            # a chunk header promising more bytes than are sent, then a hard close
            self.wfile.write(b"400\r\ndata: {\"choices\"")
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        for i, piece in enumerate(pieces):
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        if mode == "error-event":
            self._event({"error": {"message": "upstream provider overloaded", "code": 502}})
            self._end_chunks()
            return
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        wants_usage = (isinstance(body.get("stream_options"), dict) and body["stream_options"].get("include_usage")) or (
            isinstance(body.get("usage"), dict) and body["usage"].get("include"))
        if wants_usage and not b.get("no_usage"):
            self._event({**base, "choices": [], "usage": usage})
        if mode != "no-done":
            self._chunk(b"data: [DONE]\n\n")
        self._end_chunks()

    def _endless(self, model: str, base: dict[str, Any], total: int, delta_bytes: int) -> None:
        event = b"data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"content": "x" * delta_bytes},
                                                               "finish_reason": None}]}).encode() + b"\n\n"
        sent = 0
        try:
            while sent < total and not self.fake.stopping.is_set():
                self._chunk(event)
                sent += delta_bytes
        except (BrokenPipeError, ConnectionResetError):
            self.fake.record_disconnect(model)
            self.close_connection = True
            return
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self._chunk(b"data: [DONE]\n\n")
        self._end_chunks()

    def _keepalives(self, model: str, duration: float) -> None:
        end = time.monotonic() + duration
        while time.monotonic() < end and not self.fake.stopping.is_set():
            self._chunk(b": keep-alive\n\n")
            time.sleep(0.05)


def _split(text: str, parts: int) -> list[str]:
    if not text:
        return [""]
    parts = max(1, min(parts, len(text)))
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


def main(argv: list[str]) -> None:
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 0
    server = FakeLLMServer(port)
    print(server.port, flush=True)
    try:
        server._httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
