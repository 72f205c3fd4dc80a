"""Helpers shared by the LSP tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

AUTH_FILE = '''"""Token checks."""


def check(request):
    claims = jwt.decode(request.token, KEY, algorithms=["HS256"])
    return claims
'''


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """The predicate's first truthy value (a coroutine's result is awaited); fails after `timeout` s.
    The timeout is a hang guard, not a speed requirement."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the condition")
        await asyncio.sleep(interval)


async def status(client: LanguageClient) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="route-agent.status", arguments=[{}]))
    return result  # type: ignore[no-any-return]


async def wait_ready(client: LanguageClient, generation_above: int = 0) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        info = await status(client)
        folder = info["folders"][0]
        if folder["generation"] > generation_above and not folder["refreshing"]:
            return info
        return None

    deadline = asyncio.get_running_loop().time() + 30
    while True:
        info = await ready()
        if info:
            return info
        assert asyncio.get_running_loop().time() < deadline, "the server never finished a refresh"
        await asyncio.sleep(0.05)
