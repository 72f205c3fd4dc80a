"""The third client profile: an editor that declares fewer capabilities than VS Code or Neovim.

Exactly the gaps of issue 14: no `window.workDoneProgress`, no `window.showDocument`, no code action
`disabledSupport`, no file creation in workspace edits, file watchers that it registers but fires only
for folders holding tracked files (so never for `.git/HEAD` or `.git/index`), and editor lock files
(`.#name`) on by default. Everything else is VS Code's profile. One test per issue item.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsp_helpers import AUTH_FILE, wait_for
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from test_routed_run import (
    VERIFIER_90,
    RoutedEnv,
    _structure_command_or_action,
    apply_workspace_edit,
    command,
    policy_text,
)

from fakeserver.server import FakeLLMServer
from support.repos import FIX_REPLY, SKIP_TEST_REPLY, git, make_sync_repo

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "route_agent", "serve"])
PROFILE = "gaps"


def gap_capabilities() -> types.ClientCapabilities:
    """VS Code's capabilities minus the gaps the issue lists."""
    caps = client_capabilities("visual-studio-code")
    assert caps.window is not None and caps.text_document is not None and caps.workspace is not None
    assert caps.text_document.code_action is not None and caps.workspace.workspace_edit is not None
    caps.window.work_done_progress = None
    caps.window.show_document = None
    caps.text_document.code_action.disabled_support = None
    caps.workspace.workspace_edit.resource_operations = [types.ResourceOperationKind.Rename, types.ResourceOperationKind.Delete]
    # It says it can watch files (dynamic registration) but never reports git's own files.
    assert caps.workspace.did_change_watched_files is not None and caps.workspace.did_change_watched_files.dynamic_registration
    return caps


@pytest.fixture(autouse=True)
def server_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(state))
    monkeypatch.setenv("ROUTE_AGENT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("ROUTE_AGENT_LEDGER", str(tmp_path / "ledger.sqlite3"))
    monkeypatch.setenv("FAKE_LLM_KEY", "test-key-not-secret-abc123")
    return state


@pytest.fixture
def gap_env(tmp_path: Path, server_environment: Path, fake_llm: FakeLLMServer) -> RoutedEnv:
    fake_llm.script("fast-skipper", reply=SKIP_TEST_REPLY)
    fake_llm.script("fast-fixer", reply=FIX_REPLY)
    fake_llm.script("strong-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(fake_llm.base_url, "fast-skipper", "strong-fixer"))
    root = make_sync_repo(tmp_path / "repo")
    (root / "services" / "identity").mkdir(parents=True)
    (root / "services" / "identity" / "tokens.py").write_text('"""Token checks."""\n')
    git(root, "add", "-A")
    git(root, "commit", "-qm", "identity service")
    return RoutedEnv(root, server_environment, policy, fake_llm)


class GapClient:
    """What the test reads back: messages shown and logged, edits applied, watcher registrations."""

    def __init__(self, client: LanguageClient, env: RoutedEnv) -> None:
        self.client = client
        self.env = env
        self.registrations: list[types.Registration] = []

    def shown(self, kind: types.MessageType | None = None) -> list[str]:
        return [m.message for m in self.client.messages if kind is None or m.type == kind]

    def logged(self) -> list[str]:
        return [m.message for m in self.client.log_messages]


async def start(client: LanguageClient, env: RoutedEnv, policy_path: Path | None) -> GapClient:
    _structure_command_or_action(client)
    gaps = GapClient(client, env)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        env.applied.append(params.edit)
        apply_workspace_edit(params.edit)
        return types.ApplyWorkspaceEditResult(applied=True)

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    async def show_message_request(params: types.ShowMessageRequestParams) -> types.MessageActionItem | None:
        env.prompts.append(params)
        title = await env.answers.get()
        return types.MessageActionItem(title=title) if title else None

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(params: types.RegistrationParams) -> None:
        gaps.registrations.extend(params.registrations)

    options: dict[str, Any] = {"debounceMs": 50, "stateDir": str(env.state)}
    if policy_path is not None:
        options["policyPath"] = str(policy_path)
    client.set_configuration({"routeAgent": options})
    client.profile = PROFILE  # type: ignore[attr-defined]
    await client.initialize_session(types.InitializeParams(
        capabilities=gap_capabilities(),
        workspace_folders=[types.WorkspaceFolder(uri=env.root.as_uri(), name="repo")],
        initialization_options=options,
    ))
    return gaps


async def stop(client: LanguageClient, env: RoutedEnv) -> None:
    if not env.shut_down:
        env.answers.put_nowait("")
        await client.shutdown_session()


@pytest_lsp.fixture(config=SERVER)
async def gap_session(lsp_client: LanguageClient, gap_env: RoutedEnv) -> AsyncIterator[None]:
    """`policyPath` names the test policy (fake model server)."""
    lsp_client.gaps = await start(lsp_client, gap_env, gap_env.policy)  # type: ignore[attr-defined]
    yield
    await stop(lsp_client, gap_env)


@pytest_lsp.fixture(config=SERVER)
async def gap_session_repo_policy(lsp_client: LanguageClient, gap_env: RoutedEnv) -> AsyncIterator[None]:
    """No `policyPath`: the repository's own policy (if any) applies."""
    lsp_client.gaps = await start(lsp_client, gap_env, None)  # type: ignore[attr-defined]
    yield
    await stop(lsp_client, gap_env)


@pytest.fixture
def gaps(gap_session: LanguageClient) -> GapClient:
    return gap_session.gaps  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def gaps_repo_policy(gap_session_repo_policy: LanguageClient) -> GapClient:
    return gap_session_repo_policy.gaps  # type: ignore[attr-defined,no-any-return]


# --- helpers -----------------------------------------------------------------------------------


async def ready(gaps: GapClient, generation_above: int = 0) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        info = await command(gaps.client, "route-agent.status", {})
        folder = info["folders"][0]
        return folder if folder["generation"] > generation_above and not folder["refreshing"] else None

    return await wait_for(probe, timeout=30, what="a finished refresh")  # type: ignore[no-any-return]


async def refreshed(gaps: GapClient) -> dict[str, Any]:
    """Ask for a refresh and wait for its result."""
    before = await ready(gaps)
    await command(gaps.client, "route-agent.refresh", {})
    return await ready(gaps, before["generation"])


def open_doc(client: LanguageClient, path: Path) -> str:
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=path.read_text())))
    return uri


def edit_doc(client: LanguageClient, uri: str, version: int, line: int, text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line, 0), end=types.Position(line, 0)), text=text)]))


async def actions_at(client: LanguageClient, uri: str, line: int, diags: list[types.Diagnostic] | None = None) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line, 0), end=types.Position(line, 0)),
        context=types.CodeActionContext(diagnostics=diags or [])))
    return [a for a in result or [] if isinstance(a, types.CodeAction)]


async def run_action(client: LanguageClient, action: types.CodeAction) -> Any:
    """What an editor does when the action is picked: resolve, apply its edit, run its command."""
    if action.edit is None and action.data is not None:
        action = await client.code_action_resolve_async(action)
    result = None
    if action.edit is not None:
        apply_workspace_edit(action.edit)
    if action.command is not None:
        result = await command(client, action.command.command, (action.command.arguments or [{}])[0])
    return result


# --- item 5: editor lock, swap and backup files ------------------------------------------------


async def test_item5_editor_lock_files_do_not_raise_the_risk(gaps: GapClient) -> None:
    root = gaps.env.root
    uri = open_doc(gaps.client, root / "app" / "sync.py")
    edit_doc(gaps.client, uri, 2, 0, "# unsaved edit\n")
    before = await refreshed(gaps)
    assert "app/sync.py" in before["paths"]
    # What the editor does on that unsaved edit: a lock file (a dangling symlink), and a swap file.
    os.symlink("dev@host.4242:1700000000", root / "app" / ".#sync.py")
    (root / "app" / ".sync.py.swp").write_bytes(b"b0VIM 9.0\0swap")
    after = await refreshed(gaps)
    assert after["paths"] == before["paths"]
    assert after["risk_score"] == before["risk_score"]


# --- item 6: "Add path rule" ---------------------------------------------------------------------


async def drift_rule_action(gaps: GapClient) -> tuple[str, types.CodeAction]:
    root = gaps.env.root
    (root / "services" / "identity" / "tokens.py").write_text(AUTH_FILE)
    uri = (root / "services" / "identity" / "tokens.py").as_uri()
    await refreshed(gaps)
    await wait_for(lambda: any(d.code == "classifier-drift" for d in gaps.client.diagnostics.get(uri, [])), timeout=30)
    drift = [d for d in gaps.client.diagnostics[uri] if d.code == "classifier-drift"]
    actions = await actions_at(gaps.client, uri, drift[0].range.start.line, drift)
    return uri, next(a for a in actions if a.title == "Add path rule for services/identity/**")


async def test_item6_added_path_rule_clears_the_drift_without_raising_the_risk(gaps_repo_policy: GapClient) -> None:
    gaps = gaps_repo_policy
    root = gaps.env.root
    uri, action = await drift_rule_action(gaps)
    before = await ready(gaps)
    # The client cannot create files: the server writes the repository policy itself.
    result = await run_action(gaps.client, action)
    assert result["applied"] is True
    policy = root / ".route-agent" / "policy.yaml"
    assert "services/identity/**" in policy.read_text()
    after = await ready(gaps, before["generation"])
    assert ".route-agent/policy.yaml" in after["paths"]
    # One file more, nothing else: the policy's `paths:` is not a schema change.
    assert after["risk_score"] <= before["risk_score"] + 1
    explained = await command(gaps.client, "route-agent.explainRisk", {"folder": root.as_uri(), "path": ".route-agent/policy.yaml"})
    signals = {c["signal"] for c in explained["contributions"]}
    assert "schema_change" not in signals
    await wait_for(lambda: not any(d.code == "classifier-drift" for d in gaps.client.diagnostics.get(uri, [])), timeout=30)
    assert not [d for d in gaps.client.diagnostics.get(policy.as_uri(), []) if d.code in ("classifier-drift", "schema_change")]


async def test_item6_path_rule_goes_to_the_policy_in_force(gaps: GapClient) -> None:
    # policyPath is set, so the repository's policy is ignored: the rule must go to policyPath's file.
    _, action = await drift_rule_action(gaps)
    result = await run_action(gaps.client, action)
    assert result is None or result.get("applied", True)
    assert "services/identity/**" in gaps.env.policy.read_text()
    assert not (gaps.env.root / ".route-agent" / "policy.yaml").exists()
    uri = (gaps.env.root / "services" / "identity" / "tokens.py").as_uri()
    await wait_for(lambda: not any(d.code == "classifier-drift" for d in gaps.client.diagnostics.get(uri, [])), timeout=30)


# --- routed runs ---------------------------------------------------------------------------------


def use_policy(env: RoutedEnv, fast: str, strong: str, checks: str | None = None) -> None:
    env.policy.write_text(policy_text(env.fake.base_url, fast, strong) if checks is None
                          else policy_text(env.fake.base_url, fast, strong, checks))


async def route_fix(gaps: GapClient, lane: str = "auto") -> dict[str, Any]:
    env = gaps.env
    arg = {"folder": env.root.as_uri(), "uri": (env.root / "app" / "sync.py").as_uri(), "path": "app/sync.py",
           "brief": "fix retry leak in sync worker", "lane": lane,
           "range": {"start": {"line": 17, "character": 0}, "end": {"line": 17, "character": 0}}}
    result = await command(gaps.client, "route-agent.routeFix", arg)
    assert isinstance(result, dict)
    return result


async def finished(gaps: GapClient, run_id: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        runs = (await command(gaps.client, "route-agent.status", {}))["runs"]
        info = next(r for r in runs if r["run_id"] == run_id)
        return dict(info) if info["status"] != "running" else None

    return await wait_for(ended, timeout=120, what=f"run {run_id} to finish")  # type: ignore[no-any-return]


# --- item 1: progress without window.workDoneProgress ---------------------------------------------


async def test_item1_progress_without_work_done_progress_uses_messages(gaps: GapClient) -> None:
    use_policy(gaps.env, "fast-fixer", "strong-fixer")
    run_id = (await route_fix(gaps))["run_id"]
    info = await finished(gaps, run_id)
    assert info["status"] == "passed", info
    assert not gaps.client.progress_reports, "the client never offered work-done progress"
    shown = gaps.shown(types.MessageType.Info)
    assert any("routed fix started" in m and "fast lane" in m for m in shown), shown
    assert any("calling the fast lane (fast-fixer)" in m for m in shown), shown
    logged = gaps.logged()
    assert any("running checks: tests" in m for m in logged), logged
    assert any("check tests: pass" in m for m in logged), logged
    # The lane steps that matter are messages; the rest only go to the log.
    assert not any("check tests:" in m for m in shown), shown


# --- item 2: every run ends with a message; findings without a path get a diagnostic -------------


async def test_item2_failed_strong_run_says_how_it_ended_with_a_diagnostic(gaps: GapClient) -> None:
    failing = "{name: lint, run: [" + sys.executable + ", -c, 'import sys; sys.exit(3)'], timeout_s: 60}"
    use_policy(gaps.env, "fast-fixer", "strong-fixer", failing)
    run_id = (await route_fix(gaps, "strong"))["run_id"]
    info = await finished(gaps, run_id)
    assert (info["status"], info["lane"]) == ("failed", "strong"), info
    ended = await wait_for(lambda: [m for m in gaps.client.messages if "strong lane" in m.message and "failed" in m.message])
    assert ended[0].type in (types.MessageType.Error, types.MessageType.Warning)
    assert "1 check" in ended[0].message and "lint" in ended[0].message, ended[0].message
    # The lint finding has no path: it is shown at the file the run started from, line 1.
    uri = (gaps.env.root / "app" / "sync.py").as_uri()
    await wait_for(lambda: any(d.source == "route-agent/verify" and d.code == "lint" for d in gaps.client.diagnostics.get(uri, [])),
                   timeout=30)
    lint = next(d for d in gaps.client.diagnostics[uri] if d.code == "lint")
    assert lint.range.start.line == 0


async def test_item2_cancelled_run_says_so(gaps: GapClient) -> None:
    use_policy(gaps.env, "fast-fixer", "strong-fixer", "{name: slow, run: [sleep, '30.4321'], timeout_s: 120}")
    run_id = (await route_fix(gaps))["run_id"]
    await wait_for(lambda: any("running checks: slow" in m for m in gaps.logged()), timeout=60)
    await command(gaps.client, "route-agent.cancelRun", {"run_id": run_id})
    await wait_for(lambda: any("cancelled" in m for m in gaps.shown()), timeout=10)


# --- item 3: Show patch without window.showDocument --------------------------------------------------


async def passed_run(gaps: GapClient) -> str:
    use_policy(gaps.env, "fast-fixer", "strong-fixer")
    run_id = str((await route_fix(gaps))["run_id"])
    info = await finished(gaps, run_id)
    assert info["status"] == "passed", info
    return run_id


async def test_item3_show_patch_without_show_document_sends_the_patch_in_a_message(gaps: GapClient) -> None:
    run_id = await passed_run(gaps)
    result = await command(gaps.client, "route-agent.showPatch", {"run_id": run_id})
    message = await wait_for(lambda: next((m for m in gaps.shown() if "app/sync.py" in m and "pool.release()" in m), None))
    assert result["uri"].endswith(f"{run_id}.diff")
    assert Path(result["uri"].removeprefix("file://")).name in message


# --- item 4: no dead "Apply verified patch" ----------------------------------------------------------


async def test_item4_no_disabled_action_for_a_client_without_disabled_support(gaps: GapClient) -> None:
    run_id = await passed_run(gaps)
    uri = (gaps.env.root / "app" / "sync.py").as_uri()
    actions = await actions_at(gaps.client, uri, 17)
    apply_action = next(a for a in actions if a.title == "Apply verified patch")
    await run_action(gaps.client, apply_action)
    assert "pool.release()" in (gaps.env.root / "app" / "sync.py").read_text()
    after = await actions_at(gaps.client, uri, 17)
    assert "Apply verified patch" not in [a.title for a in after]
    assert all(a.disabled is None for a in after)
    # Picked anyway (a stale menu): a message says why, and the request is answered, not failed.
    result = await command(gaps.client, "route-agent.applyPatch", {"run_id": run_id})
    assert result["applied"] is False
    await wait_for(lambda: any("already applied" in m for m in gaps.shown()))


# --- item 7: a commit made outside the editor --------------------------------------------------------


async def test_item7_commit_outside_the_editor_updates_the_risk_without_watcher_events(gaps: GapClient) -> None:
    root = gaps.env.root
    (root / "README.md").write_text("# Sync worker\n\nA pending edit.\n")
    first = await refreshed(gaps)
    assert "README.md" in first["paths"]
    assert any(r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES for r in gaps.registrations)
    git(root, "commit", "-qam", "docs")  # outside the editor; this client reports no event for .git/
    async def committed() -> dict[str, Any] | None:
        info = await ready(gaps)
        return info if "README.md" not in info["paths"] else None

    info = await wait_for(committed, timeout=20, what="the risk to see the commit made outside the editor")
    assert "README.md" not in info["paths"], info
    uri = (root / "app" / "sync.py").as_uri()
    actions = await actions_at(gaps.client, uri, 0)
    refresh = next(a for a in actions if a.title == "Refresh risk")
    assert refresh.command is not None and refresh.command.command == "route-agent.refresh"


# --- item 8: refusals ---------------------------------------------------------------------------------


async def test_item8_refusal_is_a_clear_message_not_an_rpc_error(gaps: GapClient, capfd: pytest.CaptureFixture[str]) -> None:
    env = gaps.env
    env.policy.write_text(env.policy.read_text().replace("api_key_env: FAKE_LLM_KEY", "api_key_env: ROUTE_AGENT_TEST_UNSET_KEY"))
    result = await route_fix(gaps)
    assert result["refused"] is True and "ROUTE_AGENT_TEST_UNSET_KEY" in result["message"]
    error = await wait_for(lambda: [m for m in gaps.client.messages if m.type == types.MessageType.Error])
    assert "ROUTE_AGENT_TEST_UNSET_KEY" in error[0].message and "set it" in error[0].message
    assert not env.fake.requests
    await command(gaps.client, "route-agent.status", {})  # the server is still answering
    assert "Traceback" not in capfd.readouterr().err
    assert not any("Traceback" in m for m in gaps.logged())


# --- item 9: wording, the preferred action, no duplicate ---------------------------------------------


async def test_item9_one_check_preferred_escalate_and_no_duplicate_strong_action(gaps: GapClient) -> None:
    env = gaps.env
    root = env.root
    uri = (root / "app" / "sync.py").as_uri()
    run_id = (await route_fix(gaps))["run_id"]
    await wait_for(lambda: env.prompts, timeout=120)
    assert env.prompts[0].message == "Fast lane failed 1 check. Escalate to strong lane?"
    await wait_for(lambda: any(d.code == "escalate" for d in gaps.client.diagnostics.get(uri, [])), timeout=30)
    escalate = [d for d in gaps.client.diagnostics[uri] if d.code == "escalate"]
    at_prompt = await actions_at(gaps.client, uri, escalate[0].range.start.line, escalate)
    preferred = [a.title for a in at_prompt if a.is_preferred]
    assert preferred == ["Escalate to strong lane"], [(a.title, a.is_preferred) for a in at_prompt]
    elsewhere = await actions_at(gaps.client, uri, 2)
    preferred = [a.title for a in elsewhere if a.is_preferred]
    assert len(preferred) == 1 and preferred[0].startswith("Route fix via fast lane (risk "), preferred
    env.answers.put_nowait("Dismiss")
    assert (await finished(gaps, run_id))["status"] == "failed"

    # A strong-lane change set: one "Route fix via strong lane" entry, not two.
    (root / "services" / "identity" / "tokens.py").write_text(AUTH_FILE)
    await refreshed(gaps)
    titles = [a.title for a in await actions_at(gaps.client, (root / "services" / "identity" / "tokens.py").as_uri(), 0)]
    strong = [t for t in titles if t.startswith("Route fix via strong lane")]
    assert len(strong) == 1 and strong[0].startswith("Route fix via strong lane (risk "), titles


# --- item 12 (server side): a normal cancel is not news; plain-text hovers have no Markdown ----------


async def test_item12_cancel_of_a_finished_request_is_not_logged(gaps: GapClient, capfd: pytest.CaptureFixture[str]) -> None:
    await ready(gaps)
    for msg_id in range(900_000, 900_014):
        gaps.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    await command(gaps.client, "route-agent.status", {})
    err = capfd.readouterr().err
    assert "Cancel notification for unknown message id" not in err
