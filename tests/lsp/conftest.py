"""pytest-lsp fixtures: the real server as a subprocess, once per client profile (VS Code, Neovim)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsp_helpers import AUTH_FILE
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from support.repos import git

PROFILES = ["visual-studio-code", "neovim"]






def make_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / "app").mkdir()
    (root / "app" / "util.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "services" / "identity").mkdir(parents=True)
    (root / "services" / "identity" / "tokens.py").write_text('"""Token checks."""\n')
    (root / "README.md").write_text("# demo\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    # Pending changes: a small edit, and auth code in a path no rule covers.
    (root / "app" / "util.py").write_text("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
    (root / "services" / "identity" / "tokens.py").write_text(AUTH_FILE)
    return root


@pytest.fixture(scope="session")
def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("lsp")
    state = base / "state"
    state.mkdir()
    os.environ["ROUTE_AGENT_STATE_DIR"] = str(state)
    os.environ["ROUTE_AGENT_CONFIG_DIR"] = str(base / "config")
    return make_repo(base / "repo")


def _structure_command_or_action(client: LanguageClient) -> None:
    converter = client.protocol._converter

    def hook(obj: Any, _: Any) -> types.Command | types.CodeAction:
        if isinstance(obj, dict) and isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(types.Command | types.CodeAction, hook)  # type: ignore[arg-type]
    import typing

    converter.register_structure_hook(typing.Union[types.Command, types.CodeAction], hook)  # type: ignore[arg-type]  # noqa: UP007


@pytest_lsp.fixture(
    params=PROFILES,
    config=ClientServerConfig(server_command=[sys.executable, "-m", "route_agent", "serve"]),
)
async def client(request: pytest.FixtureRequest, lsp_client: LanguageClient, session_root: Path):  # type: ignore[no-untyped-def]
    _structure_command_or_action(lsp_client)
    lsp_client.applied_edits = []  # type: ignore[attr-defined]
    lsp_client.message_requests = []  # type: ignore[attr-defined]
    lsp_client.message_choice = "Dismiss"  # type: ignore[attr-defined]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        lsp_client.applied_edits.append(params)  # type: ignore[attr-defined]
        return types.ApplyWorkspaceEditResult(applied=True)

    @lsp_client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def show_message_request(params: types.ShowMessageRequestParams) -> types.MessageActionItem | None:
        lsp_client.message_requests.append(params)  # type: ignore[attr-defined]
        return types.MessageActionItem(title=lsp_client.message_choice)  # type: ignore[attr-defined]

    @lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(params: types.RegistrationParams) -> None:
        lsp_client.registrations = getattr(lsp_client, "registrations", []) + list(params.registrations)  # type: ignore[attr-defined]

    profile = request.param
    lsp_client.profile = profile  # type: ignore[attr-defined]
    root = session_root
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(profile),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="repo")],
        initialization_options={"debounceMs": 50, "stateDir": str(Path(os.environ["ROUTE_AGENT_STATE_DIR"]))},
    ))
    yield
    await lsp_client.shutdown_session()
