"""Pins the pygls private attributes route-agent relies on (lsp/pygls_private.py) on the installed
pygls, so that an upgrade that changes them fails here, loudly (issue 13, item 8)."""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version
from typing import Any

from route_agent.lsp import pygls_private
from route_agent.lsp.app import create_server
from route_agent.lsp.stdio import dispatch


class Capture:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes | str) -> None:
        self.frames.append(data.encode() if isinstance(data, str) else data)

    def close(self) -> None:
        pass

    def messages(self) -> list[dict[str, Any]]:
        out = []
        for frame in self.frames:
            head, _, body = frame.partition(b"\r\n\r\n")
            assert head.startswith(b"Content-Length: ") and int(head.split(b"\r\n")[0][16:]) == len(body)
            out.append(json.loads(body))
        return out


def _send(protocol: Any, message: dict[str, Any]) -> None:
    dispatch(protocol, json.dumps(message).encode())


def test_the_pinned_pygls_major_version() -> None:
    assert version("pygls").split(".")[0] == "2"


def test_send_data_writes_one_framed_message() -> None:
    server = create_server()
    writer = Capture()
    server.protocol.set_writer(writer)  # type: ignore[arg-type]
    pygls_private.send_data(server.protocol, {"jsonrpc": "2.0", "id": 7, "error": {"code": -32600, "message": "no"}})
    assert writer.messages() == [{"jsonrpc": "2.0", "id": 7, "error": {"code": -32600, "message": "no"}}]


def test_is_shut_down_follows_the_shutdown_request() -> None:
    async def scenario() -> None:
        server = create_server()
        server.protocol.set_writer(Capture())  # type: ignore[arg-type]
        assert pygls_private.is_shut_down(server.protocol) is False
        _send(server.protocol, {"jsonrpc": "2.0", "id": 1, "method": "shutdown"})
        for _ in range(100):
            if pygls_private.is_shut_down(server.protocol):
                break
            await asyncio.sleep(0.01)
        assert pygls_private.is_shut_down(server.protocol) is True

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_request_future_is_the_one_cancel_request_cancels() -> None:
    async def scenario() -> None:
        server = create_server()
        server.protocol.set_writer(Capture())  # type: ignore[arg-type]
        started = asyncio.Event()

        async def wait_forever(ls: Any, *args: Any) -> None:
            started.set()
            await asyncio.Event().wait()

        server.command("test.waitForever")(wait_forever)
        _send(server.protocol, {"jsonrpc": "2.0", "id": "w1", "method": "workspace/executeCommand",
                                "params": {"command": "test.waitForever", "arguments": []}})
        await asyncio.wait_for(started.wait(), 10)
        future = pygls_private.request_future(server.protocol, "w1")
        assert future is not None and not future.done()
        assert pygls_private.request_future(server.protocol, "unknown") is None
        _send(server.protocol, {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "w1"}})
        for _ in range(100):
            if future.done():
                break
            await asyncio.sleep(0.01)
        assert future.cancelled()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_overridden_response_handler_keeps_its_signature() -> None:
    import inspect

    from pygls.protocol import JsonRPCProtocol

    assert list(inspect.signature(JsonRPCProtocol._handle_response).parameters) == ["self", "msg_id", "result", "error"]
