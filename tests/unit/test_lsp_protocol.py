"""Pins the pygls behaviour RouteAgentProtocol overrides (pygls version in pyproject.toml)."""

from __future__ import annotations

from concurrent.futures import Future

from lsprotocol import types

from route_agent.lsp.app import create_server


def test_a_reply_to_a_cancelled_request_is_dropped() -> None:
    server = create_server()
    protocol = server.protocol
    future: Future[object] = protocol.send_request(types.WORKSPACE_CONFIGURATION, None, msg_id="late-1")
    assert protocol._request_futures["late-1"] is future
    future.cancel()
    protocol._handle_response("late-1", result=[None])  # pygls itself raised InvalidStateError here
    assert "late-1" not in protocol._request_futures
    assert future.cancelled()


def test_a_reply_to_a_pending_request_still_resolves_it() -> None:
    server = create_server()
    protocol = server.protocol
    future: Future[object] = protocol.send_request(types.WORKSPACE_CONFIGURATION, None, msg_id="on-time-1")
    protocol._handle_response("on-time-1", result=[{"lane": "auto"}])
    assert future.result(timeout=1) == [{"lane": "auto"}]
    assert "on-time-1" not in protocol._request_futures
