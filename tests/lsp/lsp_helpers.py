"""Helpers shared by the LSP tests."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

from support.wait import wait_for

__all__ = ["AUTH_FILE", "status", "wait_for", "wait_ready"]

AUTH_FILE = '''"""Token checks."""


def check(request):
    claims = jwt.decode(request.token, KEY, algorithms=["HS256"])
    return claims
'''


async def status(client: LanguageClient) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="route-agent.status", arguments=[{}]))
    return result  # type: ignore[no-any-return]


async def wait_ready(client: LanguageClient, generation_above: int = 0) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        info = await status(client)
        folder = info["folders"][0]
        return info if folder["generation"] > generation_above and not folder["refreshing"] else None

    return await wait_for(ready, timeout=30, what="a finished refresh")  # type: ignore[no-any-return]
