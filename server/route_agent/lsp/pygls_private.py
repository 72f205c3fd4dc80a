"""Every use of pygls's private attributes, in one place, pinned by tests/unit/test_pygls_private.py.

pygls (the version range in pyproject.toml) has no public API for these; when an upgrade renames or
changes one, the pinning test fails loudly instead of the server misbehaving quietly.

- `send_data`: write one JSON-RPC message as pygls writes its own (`JsonRPCProtocol._send_data`), for
  answers pygls would not send (parse errors, requests after shutdown).
- `is_shut_down`: whether `shutdown` was received (`JsonRPCProtocol._shutdown`).
- `request_future` / `forget_request`: the future pygls keeps per message id (`_request_futures`):
  for an incoming request being handled (cancelled on `$/cancelRequest`) and for a request the
  server sent and awaits the reply to.
- protocol.py overrides `JsonRPCProtocol._handle_response(msg_id, result, error)` to drop a late
  reply to a cancelled request; the test pins that method too.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from pygls.protocol import JsonRPCProtocol


def send_data(protocol: JsonRPCProtocol, data: Any) -> None:
    protocol._send_data(data)


def is_shut_down(protocol: JsonRPCProtocol) -> bool:
    return bool(protocol._shutdown)


def request_future(protocol: JsonRPCProtocol, msg_id: Any) -> Future[Any] | None:
    futures: dict[Any, Future[Any]] = getattr(protocol, "_request_futures", {})
    return futures.get(msg_id)


def forget_request(protocol: JsonRPCProtocol, msg_id: Any) -> None:
    protocol._request_futures.pop(msg_id, None)
