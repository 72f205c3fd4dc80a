"""Settings per workspace folder (issue 13, item 5): a multi-root workspace with two repositories and
two different settings. The server asks `workspace/configuration` once without a scope and once per
folder (`scopeUri`), keeps each answer on its folder, and uses it for that folder's risk and runs."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsp_helpers import wait_for
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from route_agent.lsp.settings import CONFIG_SECTION
from support.repos import git

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "route_agent", "serve"])


def small_change_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "util.py").write_text("def add(a, b):\n    return a + b\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    (root / "util.py").write_text("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
    return root


@pytest.fixture
def repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROUTE_AGENT_CONFIG_DIR", str(tmp_path / "config"))
    return {"a": small_change_repo(tmp_path / "a"), "b": small_change_repo(tmp_path / "b")}


@pytest_lsp.fixture(config=SERVER)
async def multi_root(lsp_client: LanguageClient, repos: dict[str, Path]) -> AsyncIterator[None]:
    lsp_client.set_configuration({"debounceMs": 50}, section=CONFIG_SECTION)
    lsp_client.set_configuration({"lane": "strong"}, section=CONFIG_SECTION, scope_uri=repos["a"].as_uri())
    lsp_client.set_configuration({}, section=CONFIG_SECTION, scope_uri=repos["b"].as_uri())
    @lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(params: types.RegistrationParams) -> None:
        return None

    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        workspace_folders=[types.WorkspaceFolder(uri=repos["a"].as_uri(), name="a"),
                           types.WorkspaceFolder(uri=repos["b"].as_uri(), name="b")],
    ))
    yield
    await lsp_client.shutdown_session()


async def summary(client: LanguageClient, root: Path) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="route-agent.riskSummary", arguments=[{"uri": root.as_uri()}]))
    return result  # type: ignore[no-any-return]


async def test_each_folder_gets_its_own_settings(multi_root: LanguageClient, repos: dict[str, Path]) -> None:
    client = multi_root

    async def lanes() -> dict[str, Any] | None:
        a, b = await summary(client, repos["a"]), await summary(client, repos["b"])
        done = not a["refreshing"] and not b["refreshing"] and a["lane"] == "strong"
        return {"a": a, "b": b} if done else None

    found = await wait_for(lanes, timeout=60)
    assert (found["a"]["lane"], found["b"]["lane"]) == ("strong", "fast")
    assert found["a"]["riskScore"] == found["b"]["riskScore"], "the same change in both: only the lane setting differs"
