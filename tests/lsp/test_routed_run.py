"""A routed run from the editor against the OpenAI-compatible test server, once per client profile.

The full fix with escalation (the fast lane skips the test: tamper => prompt => Escalate => the
strong lane's real fix passes => Apply verified patch), the same through the diagnostic's code action
for clients that dismiss the prompt, cancellation mid-run (progress cancel, `$/cancelRequest`,
`route-agent.cancelRun`) with no check process or worktree left, shutdown mid-run within 2 s, and the
repository policy's command approval.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsp_helpers import wait_for
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from fakeserver.server import FakeLLMServer
from support.repos import FIX_REPLY, SKIP_TEST_REPLY, held_worktrees, make_sync_repo

PROFILES = ["visual-studio-code", "neovim"]
SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "route_agent", "serve"])
VERIFIER_90 = '{"verdict": "pass", "confidence": 0.9, "summary": "releases the connection", "concerns": []}'
PYTEST_CHECK = (
    f"{{name: tests, kind: tests, run: [{sys.executable}, -m, pytest, -q, -p, no:cacheprovider, --junitxml=.route-agent/junit.xml], "
    "parser: junit, report: .route-agent/junit.xml, timeout_s: 120}"
)
MARKER_ENV = "ROUTE_AGENT_CHECK_ID"


def policy_text(base_url: str, fast: str, strong: str, checks: str = PYTEST_CHECK) -> str:
    return f"""
models:
  fast: {{provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY, model: {fast}, executor: oneshot, price_per_mtok: {{input: 1.0, output: 5.0}}}}
  strong: {{provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY, model: {strong}, executor: oneshot, price_per_mtok: {{input: 3.0, output: 15.0}}}}
  verifier: {{provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY, model: verifier-90}}
verification:
  fast: [{checks}]
  strong: [{checks}]
"""


@dataclass
class RoutedEnv:
    root: Path
    state: Path
    policy: Path
    fake: FakeLLMServer
    prompts: list[types.ShowMessageRequestParams] = field(default_factory=list)
    answers: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    applied: list[types.WorkspaceEdit] = field(default_factory=list)
    shut_down: bool = False


@pytest.fixture(autouse=True)
def server_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What the server process inherits (it starts before other fixtures): state, ledger, the API key."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(state))
    monkeypatch.setenv("ROUTE_AGENT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("ROUTE_AGENT_LEDGER", str(tmp_path / "ledger.sqlite3"))
    monkeypatch.setenv("FAKE_LLM_KEY", "test-key-not-secret-abc123")
    return state


@pytest.fixture
def routed_env(tmp_path: Path, server_environment: Path, fake_llm: FakeLLMServer) -> RoutedEnv:
    fake_llm.script("fast-skipper", reply=SKIP_TEST_REPLY)
    fake_llm.script("fast-fixer", reply=FIX_REPLY)
    fake_llm.script("strong-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(fake_llm.base_url, "fast-skipper", "strong-fixer"))
    return RoutedEnv(make_sync_repo(tmp_path / "repo"), server_environment, policy, fake_llm)


def apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    lines = text.splitlines(keepends=True)

    def offset(pos: types.Position) -> int:
        return sum(len(line) for line in lines[: pos.line]) + pos.character

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


def apply_workspace_edit(edit: types.WorkspaceEdit) -> None:
    """What an editor does with the edit, on disk (no buffers are open in these tests)."""
    per_uri: list[tuple[str, list[types.TextEdit]]] = list((edit.changes or {}).items())
    for change in edit.document_changes or ():
        if isinstance(change, types.TextDocumentEdit):
            per_uri.append((change.text_document.uri, [e for e in change.edits if isinstance(e, types.TextEdit)]))
        elif isinstance(change, types.CreateFile):
            Path(change.uri.removeprefix("file://")).touch()
        elif isinstance(change, types.DeleteFile):
            Path(change.uri.removeprefix("file://")).unlink(missing_ok=True)
    for uri, edits in per_uri:
        path = Path(uri.removeprefix("file://"))
        path.write_text(apply_text_edits(path.read_text() if path.exists() else "", edits))


def _structure_command_or_action(client: LanguageClient) -> None:
    """lsprotocol mis-structures a CodeAction carrying a nested command as a Command (house-style.md)."""
    import typing

    converter = client.protocol._converter

    def hook(obj: Any, _: Any) -> types.Command | types.CodeAction:
        if isinstance(obj, dict) and isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(typing.Union[types.Command, types.CodeAction], hook)  # type: ignore[arg-type]  # noqa: UP007


async def start_session(client: LanguageClient, env: RoutedEnv, profile: str, policy_path: Path | None) -> None:
    _structure_command_or_action(client)

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
        return None

    options: dict[str, Any] = {"debounceMs": 50, "stateDir": str(env.state)}
    if policy_path is not None:
        options["policyPath"] = str(policy_path)
    client.set_configuration({"routeAgent": options})
    client.profile = profile  # type: ignore[attr-defined]
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(profile),
        workspace_folders=[types.WorkspaceFolder(uri=env.root.as_uri(), name="repo")],
        initialization_options=options,
    ))


async def end_session(client: LanguageClient, env: RoutedEnv) -> None:
    if not env.shut_down:
        env.answers.put_nowait("")  # a prompt still waiting must not hold the shutdown
        await client.shutdown_session()


@pytest_lsp.fixture(params=PROFILES, config=SERVER)
async def client(request: pytest.FixtureRequest, lsp_client: LanguageClient, routed_env: RoutedEnv) -> AsyncIterator[None]:
    await start_session(lsp_client, routed_env, request.param, routed_env.policy)
    yield
    await end_session(lsp_client, routed_env)


@pytest_lsp.fixture(params=PROFILES, config=SERVER)
async def repo_policy_client(request: pytest.FixtureRequest, lsp_client: LanguageClient, routed_env: RoutedEnv) -> AsyncIterator[None]:
    """No `policyPath` setting: the repository's own policy applies, and its commands need approval."""
    await start_session(lsp_client, routed_env, request.param, None)
    yield
    await end_session(lsp_client, routed_env)


# --- helpers -----------------------------------------------------------------------------------


async def command(client: LanguageClient, name: str, arg: dict[str, Any]) -> Any:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command=name, arguments=[arg]))


async def run_info(client: LanguageClient, run_id: str) -> dict[str, Any]:
    status = await command(client, "route-agent.status", {})
    return next(r for r in status["runs"] if r["run_id"] == run_id)


async def wait_run(client: LanguageClient, run_id: str, *statuses: str, timeout: float = 120.0) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        info = await run_info(client, run_id)
        assert info["status"] in statuses or info["status"] == "running", info
        return info if info["status"] in statuses else None

    return await wait_for(ended, timeout=timeout, interval=0.1, what=f"run {run_id} to end")  # type: ignore[no-any-return]


async def escalated_run(client: LanguageClient, run_id: str) -> str:
    async def escalation() -> list[str]:
        runs = (await command(client, "route-agent.status", {}))["runs"]
        return [r["run_id"] for r in runs if r["escalated_from"] == run_id]

    return str((await wait_for(escalation, timeout=30, what=f"run {run_id} to be escalated"))[0])


async def route_fix(client: LanguageClient, env: RoutedEnv, **extra: Any) -> dict[str, Any]:
    arg = {"folder": env.root.as_uri(), "uri": (env.root / "app" / "sync.py").as_uri(), "path": "app/sync.py",
           "brief": "fix retry leak in sync worker", "lane": "auto",
           "range": {"start": {"line": 17, "character": 0}, "end": {"line": 17, "character": 0}}, **extra}
    result = await command(client, "route-agent.routeFix", arg)
    assert isinstance(result, dict)
    return result


async def diagnostics_for(client: LanguageClient, uri: str, predicate: Any) -> list[types.Diagnostic]:
    """Pull (Neovim profile) or wait for a push (VS Code profile) until `predicate` holds."""
    if getattr(client, "profile", "") == "neovim":
        async def pulled() -> tuple[list[types.Diagnostic]] | None:
            report = await client.text_document_diagnostic_async(types.DocumentDiagnosticParams(
                text_document=types.TextDocumentIdentifier(uri=uri)))
            assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
            return (list(report.items),) if predicate(report.items) else None  # a 1-tuple: an empty list may match

        return (await wait_for(pulled, timeout=30, what=f"pulled diagnostics of {uri}"))[0]  # type: ignore[no-any-return]
    await wait_for(lambda: predicate(client.diagnostics.get(uri, [])), timeout=30)
    return list(client.diagnostics[uri])


async def code_actions(client: LanguageClient, uri: str, line: int, diags: list[types.Diagnostic] | None = None) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line, 0), end=types.Position(line, 0)),
        context=types.CodeActionContext(diagnostics=diags or [])))
    actions = [a for a in result or [] if isinstance(a, types.CodeAction)]
    assert len(actions) == len(result or []), "a client with code action literals got bare commands"
    return actions


def check_processes(tag: str) -> list[int]:
    """Live processes started as a check (the marker in their environment) whose argv holds `tag`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if tag.encode() not in argv:
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if f"{MARKER_ENV}=".encode() in environ:
            found.append(int(entry))
    return found


def worktrees(state: Path) -> list[Path]:
    """Worktrees a run holds (an idle slot of the pool is not one: it is reset before reuse)."""
    return held_worktrees(state)


def slow_check_policy(env: RoutedEnv) -> str:
    """Fast lane fixes at once; its only check sleeps (a duration unique to this test) until killed."""
    tag = f"{30 + uuid.uuid4().int % 1000 / 1000:.3f}"
    env.policy.write_text(policy_text(env.fake.base_url, "fast-fixer", "strong-fixer", f"{{name: slow, run: [sleep, '{tag}'], timeout_s: 120}}"))
    return tag


# --- the full routed fix -----------------------------------------------------------------------


@pytest.mark.parametrize("via", ["prompt", "code-action"])
async def test_routed_fix_with_escalation(client: LanguageClient, routed_env: RoutedEnv, via: str) -> None:
    env = routed_env
    sync_uri = (env.root / "app" / "sync.py").as_uri()
    test_uri = (env.root / "tests" / "test_sync.py").as_uri()
    started = await route_fix(client, env)
    assert started["lane"] == "fast"
    fast_id = started["run_id"]

    # The fast lane skipped the test: tamper; the pipeline stopped after that one attempt and the user is asked.
    await wait_for(lambda: env.prompts, timeout=120)
    assert env.prompts[0].message == "Fast lane failed 1 check. Escalate to strong lane?"
    assert [a.title for a in env.prompts[0].actions or []] == ["Escalate", "Show findings", "Dismiss"]
    fast = await run_info(client, fast_id)
    assert (fast["status"], fast["lane"], fast["escalated"]) == ("failed", "fast", False)
    assert "tamper" in fast["reasons"]

    verify = await diagnostics_for(client, test_uri, lambda ds: any(d.source == "route-agent/verify" and d.code == "tamper" for d in ds))
    tamper = next(d for d in verify if d.code == "tamper")
    assert tamper.severity == types.DiagnosticSeverity.Error and tamper.range.start.line >= 0
    prompt = await diagnostics_for(client, sync_uri, lambda ds: any(d.code == "escalate" for d in ds))
    escalate_diag = next(d for d in prompt if d.code == "escalate")
    assert escalate_diag.source == "route-agent/verify" and escalate_diag.range.start.line == 17
    assert escalate_diag.message == env.prompts[0].message

    actions = await code_actions(client, sync_uri, 17, [escalate_diag])
    escalate_action = next(a for a in actions if a.title == "Escalate to strong lane")
    assert escalate_action.command is not None and list(escalate_action.command.arguments or ()) == [{"run_id": fast_id}]

    if via == "prompt":
        env.answers.put_nowait("Escalate")
    else:
        env.answers.put_nowait("Dismiss")
        # The prompt stays as a diagnostic until acted on; its code action escalates.
        await diagnostics_for(client, sync_uri, lambda ds: any(d.code == "escalate" for d in ds))
        await command(client, escalate_action.command.command, (escalate_action.command.arguments or ({},))[0])

    strong_id = await escalated_run(client, fast_id)
    strong = await wait_run(client, strong_id, "passed", "failed", "error")
    assert (strong["status"], strong["lane"], strong["has_patch"]) == ("passed", "strong", True), strong
    assert (await run_info(client, fast_id))["escalated"] is True

    # The ledger sees one task: the fast attempt marked escalated, the strong attempt numbered on.
    import os

    from route_agent.ledger import open_ledger

    ledger = open_ledger(os.environ["ROUTE_AGENT_LEDGER"])
    rows = {r.run_id: r for r in ledger.rows() if r.run_id in (fast_id, strong_id)}
    ledger.close()
    assert rows[fast_id].escalated and (rows[fast_id].escalation_reason or "").startswith("user:")
    assert rows[strong_id].attempt_no == 2 and rows[strong_id].task == rows[fast_id].task == fast_id

    # The strong lane's prompt carried the fast attempt's findings.
    strong_bodies = [r.body for r in env.fake.requests if r.model == "strong-fixer"]
    assert strong_bodies and "tamper" in strong_bodies[0]

    # Progress: begin, reports and end for both runs; the escalation prompt is gone.
    for run_id in (fast_id, strong_id):
        reports = client.progress_reports[f"route-agent/{run_id}"]
        # The run's status can read "passed" a moment before its progress End notification arrives.
        await wait_for(lambda reports=reports: isinstance(reports[-1], types.WorkDoneProgressEnd), timeout=30,
                       what=f"the end of run {run_id}'s progress")
        assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
        assert any(isinstance(r, types.WorkDoneProgressReport) and "check" in (r.message or "") for r in reports)
        assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    await diagnostics_for(client, sync_uri, lambda ds: not any(d.code == "escalate" for d in ds))

    actions = await code_actions(client, sync_uri, 17)
    titles = [a.title for a in actions]
    assert "Apply verified patch" in titles and "Show patch" in titles and "Escalate to strong lane" not in titles
    apply_action = next(a for a in actions if a.title == "Apply verified patch")
    resolved = await client.code_action_resolve_async(apply_action)
    assert resolved.edit is not None and resolved.disabled is None

    shown = await command(client, "route-agent.showPatch", {"run_id": strong_id})
    assert "+        pool.release()" in shown["patch"]

    before = (env.root / "app" / "sync.py").read_text()
    result = await command(client, "route-agent.applyPatch", {"run_id": strong_id})
    assert result["applied"] is True
    after = (env.root / "app" / "sync.py").read_text()
    assert after != before and "        pool.release()\n" in after

    # The file no longer matches the patch's base: applying again is refused, with the reason; a
    # client that shows `disabled` actions gets it greyed out, any other no longer gets the action.
    again = await client.code_action_resolve_async(apply_action)
    assert again.edit is None
    offered = {a.title: a for a in await code_actions(client, sync_uri, 17)}
    if client.capabilities.text_document.code_action.disabled_support:  # type: ignore[union-attr]
        assert again.disabled is not None and again.disabled.reason == "the patch is already applied"
        assert offered["Apply verified patch"].disabled is not None
    else:
        assert again.disabled is None and again.command is not None and again.command.command == "route-agent.applyPatch"
        assert "Apply verified patch" not in offered


async def test_show_findings_answers_with_the_findings(client: LanguageClient, routed_env: RoutedEnv) -> None:
    started = await route_fix(client, routed_env)
    await wait_for(lambda: routed_env.prompts, timeout=120)
    routed_env.answers.put_nowait("Show findings")
    shown = await wait_for(lambda: [m for m in client.messages if m.message.startswith("Fast lane attempt failed")], timeout=30)
    assert "tamper" in shown[0].message and "tests/test_sync.py" in shown[0].message
    assert (await run_info(client, started["run_id"]))["status"] == "failed"


# --- cancellation and shutdown -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["progress-cancel", "cancel-request", "cancel-command"])
async def test_cancel_mid_run_kills_checks_and_removes_the_worktree(client: LanguageClient, routed_env: RoutedEnv, how: str) -> None:
    env = routed_env
    tag = slow_check_policy(env)
    request: Any = None
    msg_id = f"route-{uuid.uuid4().hex[:8]}"
    if how == "cancel-request":
        # A request that answers when the run ends, so that cancelling the request cancels the run.
        arg = {"folder": env.root.as_uri(), "brief": "fix retry leak in sync worker", "wait": True}
        request = client.protocol.send_request(types.WORKSPACE_EXECUTE_COMMAND,
                                               types.ExecuteCommandParams(command="route-agent.routeFix", arguments=[arg]), msg_id=msg_id)
        async def started_runs() -> list[dict[str, Any]]:
            return list((await command(client, "route-agent.status", {}))["runs"])

        runs = await wait_for(started_runs, timeout=20, what="the run to start")
        run_id = str(runs[-1]["run_id"])
    else:
        run_id = (await route_fix(client, env))["run_id"]
    await wait_for(lambda: check_processes(tag), timeout=60)
    assert worktrees(env.state), "the check should be running in a worktree"

    if how == "progress-cancel":
        client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=f"route-agent/{run_id}"))
    elif how == "cancel-request":
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        with pytest.raises(JsonRpcException):
            await asyncio.wait_for(asyncio.wrap_future(request), 10)
    else:
        result = await command(client, "route-agent.cancelRun", {"run_id": run_id})
        assert result == {"cancelled": True, "status": "cancelled"}

    info = await wait_run(client, run_id, "cancelled", "failed", "passed", "error", timeout=10)
    assert info["status"] == "cancelled"
    await wait_for(lambda: not check_processes(tag), timeout=5)
    await wait_for(lambda: not worktrees(env.state), timeout=5)
    reports = client.progress_reports.get(f"route-agent/{run_id}", [])
    assert reports and isinstance(reports[-1], types.WorkDoneProgressEnd) and "cancelled" in (reports[-1].message or "")
    assert not routed_env.prompts, "a cancelled run must not offer escalation"


async def test_cancel_during_the_lane_call_closes_the_stream(client: LanguageClient, routed_env: RoutedEnv) -> None:
    env = routed_env
    env.policy.write_text(policy_text(env.fake.base_url, "hang", "strong-fixer"))
    run_id = (await route_fix(client, env))["run_id"]
    await wait_for(lambda: any(r.model == "hang" for r in env.fake.requests), timeout=30)
    result = await command(client, "route-agent.cancelRun", {"run_id": run_id})
    assert result["cancelled"] is True and result["status"] == "cancelled"
    await wait_for(lambda: any(model == "hang" for model, _ in env.fake.disconnects), timeout=10)
    assert not worktrees(env.state)


async def test_shutdown_mid_run_is_quick_and_leaves_nothing(client: LanguageClient, routed_env: RoutedEnv) -> None:
    env = routed_env
    tag = slow_check_policy(env)
    await route_fix(client, env)
    await wait_for(lambda: check_processes(tag), timeout=60)
    await asyncio.wait_for(client.shutdown_session(), 30)  # a hang guard; the time is benchmarks/bench_shutdown.py's
    env.shut_down = True
    await wait_for(lambda: not check_processes(tag), timeout=30)
    assert not worktrees(env.state), "the run's worktree outlived the server"


# --- trust -------------------------------------------------------------------------------------


async def test_repository_policy_commands_need_approval(repo_policy_client: LanguageClient, routed_env: RoutedEnv) -> None:
    client, env = repo_policy_client, routed_env
    (env.root / ".route-agent").mkdir(exist_ok=True)
    (env.root / ".route-agent" / "policy.yaml").write_text(env.policy.read_text())
    refused = await route_fix(client, env)  # an expected refusal: a message and a short answer, not an RPC error
    assert refused["refused"] is True
    assert "have not approved" in refused["message"] and "nothing was run" in refused["message"]
    assert any(m.type == types.MessageType.Error and "have not approved" in m.message for m in client.messages)
    assert not env.fake.requests

    listed = await command(client, "route-agent.policyCommands", {"folderUri": env.root.as_uri()})
    assert listed["approved"] is False and listed["commands"][0]["name"] == "tests"
    with pytest.raises(JsonRpcException):
        await command(client, "route-agent.approvePolicy", {"folderUri": env.root.as_uri(), "sha256": "0" * 64})
    approved = await command(client, "route-agent.approvePolicy", {"folderUri": env.root.as_uri(), "sha256": listed["sha256"]})
    assert approved == {"approved": True, "sha256": listed["sha256"]}
    assert (await command(client, "route-agent.policyCommands", {"folderUri": env.root.as_uri()}))["approved"] is True

    started = await route_fix(client, env)
    assert started["lane"] == "fast"
    await wait_for(lambda: env.prompts, timeout=120)
    assert (await run_info(client, started["run_id"]))["status"] == "failed"


BREAKS_TEST_REPLY = """Count twice.

```diff
--- a/app/sync.py
+++ b/app/sync.py
@@ -18,5 +18,5 @@ def sync(pool: Pool, attempts: int) -> int:
     done = 0
     for _ in range(attempts):
         pool.acquire()
-        done += 1
+        done += 2
     return done
```
"""


async def test_failing_test_is_a_verify_diagnostic_at_its_file_and_line(client: LanguageClient, routed_env: RoutedEnv) -> None:
    env = routed_env
    env.fake.script("fast-skipper", reply=BREAKS_TEST_REPLY)
    await route_fix(client, env)
    await wait_for(lambda: env.prompts, timeout=120)
    test_uri = (env.root / "tests" / "test_sync.py").as_uri()
    diags = await diagnostics_for(client, test_uri, lambda ds: any(d.source == "route-agent/verify" and d.code == "tests" for d in ds))
    failing = [d for d in diags if d.code == "tests"]
    assert {d.range.start.line for d in failing} == {4, 10}, failing  # `assert` lines 5 and 11, 0-based
    assert all("test_sync" in d.message for d in failing)

    # A pull client learns about the file it has not opened through workspace diagnostics.
    report = await client.workspace_diagnostic_async(types.WorkspaceDiagnosticParams(previous_result_ids=[]))
    full = {item.uri: item for item in report.items if isinstance(item, types.WorkspaceFullDocumentDiagnosticReport)}
    assert {d.range.start.line for d in full[test_uri].items if d.code == "tests"} == {4, 10}
    again = await client.workspace_diagnostic_async(types.WorkspaceDiagnosticParams(
        previous_result_ids=[types.PreviousResultId(uri=test_uri, value=full[test_uri].result_id)]))
    assert any(isinstance(i, types.WorkspaceUnchangedDocumentDiagnosticReport) and i.uri == test_uri for i in again.items)


async def test_unsaved_buffer_is_what_the_patch_applies_to(client: LanguageClient, routed_env: RoutedEnv) -> None:
    """The model is shown the editor's unsaved text; the worktree starts from it too, so its patch
    applies, and Apply verified patch edits the buffer as the user has it."""
    import difflib

    env = routed_env
    sync_path = env.root / "app" / "sync.py"
    on_disk = sync_path.read_text()
    unsaved = on_disk.replace('"""A sync worker that retries failed uploads."""', '"""A sync worker that retries failed uploads (unsaved note)."""')
    fixed = unsaved.replace("        done += 1\n", "        done += 1\n        pool.release()\n")
    diff = "".join(difflib.unified_diff(unsaved.splitlines(True), fixed.splitlines(True), "a/app/sync.py", "b/app/sync.py"))
    env.fake.script("fast-skipper", reply=f"Release it.\n\n```diff\n{diff}```\n")
    uri = sync_path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=unsaved)))
    started = await route_fix(client, env)
    info = await wait_run(client, started["run_id"], "passed", "failed", "error")
    assert info["status"] == "passed", info
    assert sync_path.read_text() == on_disk, "the user's file changed before they applied anything"
    actions = await code_actions(client, uri, 17)
    apply_action = next(a for a in actions if a.title == "Apply verified patch")
    resolved = await client.code_action_resolve_async(apply_action)
    assert resolved.edit is not None and resolved.disabled is None
    edits = [e for change in resolved.edit.document_changes or () if isinstance(change, types.TextDocumentEdit)
             for e in change.edits if isinstance(e, types.TextEdit)]
    edits += list((resolved.edit.changes or {}).get(uri, []))  # clients without documentChanges get `changes`
    assert edits and apply_text_edits(unsaved, edits) == fixed


# --- lanes that are agents (issue 11) ------------------------------------------------------------


def agent_reply(command: str) -> str:
    return f"Next.\n\n```bash\n{command}\n```\n"


AGENT_FIX = ("python3 - <<'EOF'\nimport pathlib\np = pathlib.Path('app/sync.py')\n"
             "p.write_text(p.read_text().replace('        done += 1\\n', '        done += 1\\n        pool.release()\\n'))\nEOF")


async def test_agent_steps_are_progress_in_the_editor(client: LanguageClient, routed_env: RoutedEnv) -> None:
    env = routed_env
    env.fake.script("fast-agent", replies=[agent_reply("ls app"), agent_reply(AGENT_FIX), agent_reply("submit")])
    env.policy.write_text(policy_text(env.fake.base_url, "fast-agent", "strong-fixer").replace("executor: oneshot", "executor: builtin"))
    run_id = (await route_fix(client, env))["run_id"]
    info = await wait_run(client, run_id, "passed", "failed", "error", "cancelled")
    assert info["status"] == "passed", info
    messages = [r.message or "" for r in client.progress_reports[f"route-agent/{run_id}"] if isinstance(r, types.WorkDoneProgressReport)]
    assert "fast lane step 1/40: ls app -> exit 0" in " | ".join(messages)
    assert any(m.startswith("fast lane step 2/40: python3 - <<'EOF'") and m.endswith(" s") for m in messages), messages
    assert "fast lane step 3/40: submit" in messages
    assert "fast lane agent (builtin): submitted" in messages


# progress-cancel is what VS Code's Cancel button on the progress notification sends.
@pytest.mark.parametrize("how", ["progress-cancel", "cancel-command"])
async def test_cancel_from_the_editor_mid_agent_command_kills_it(client: LanguageClient, routed_env: RoutedEnv, how: str) -> None:
    env = routed_env
    tag = f"ra-agent-{uuid.uuid4().hex[:8]}"
    env.fake.script("fast-sleeper", replies=[agent_reply(f"exec -a {tag} sleep 60")])
    env.policy.write_text(policy_text(env.fake.base_url, "fast-sleeper", "strong-fixer").replace("executor: oneshot", "executor: builtin"))
    run_id = (await route_fix(client, env))["run_id"]
    await wait_for(lambda: check_processes(tag), timeout=60)
    if how == "progress-cancel":
        client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=f"route-agent/{run_id}"))
    else:
        result = await command(client, "route-agent.cancelRun", {"run_id": run_id})
        assert result == {"cancelled": True, "status": "cancelled"}
    info = await wait_run(client, run_id, "cancelled", "failed", "passed", "error", timeout=10)
    assert info["status"] == "cancelled"
    await wait_for(lambda: not check_processes(tag), timeout=5)
    await wait_for(lambda: not worktrees(env.state), timeout=5)
    reports = client.progress_reports.get(f"route-agent/{run_id}", [])
    assert reports and isinstance(reports[-1], types.WorkDoneProgressEnd) and "cancelled" in (reports[-1].message or "")


# --- review artefacts from the editor (issue 16) ---------------------------------------------------


async def test_apply_and_commit_and_reject_from_the_editor(client: LanguageClient, routed_env: RoutedEnv) -> None:
    import subprocess

    from route_agent.ledger import open_ledger

    env = routed_env
    env.fake.script("fast-skipper", reply=FIX_REPLY)
    sync_uri = (env.root / "app" / "sync.py").as_uri()
    started = await route_fix(client, env)
    run_id = started["run_id"]
    info = await wait_run(client, run_id, "passed", "failed", "error")
    assert info["status"] == "passed", info
    titles = [a.title for a in await code_actions(client, sync_uri, 17)]
    assert "Apply and commit verified patch" in titles and "Reject verified patch (record why)" in titles

    # The review first: a rejection with a reason picked from the prompt.
    env.answers.put_nowait("Too broad")
    rejected = await command(client, "route-agent.rejectPatch", {"run_id": run_id})
    assert rejected == {"recorded": True, "reason": "Too broad"}
    ledger = open_ledger(os.environ["ROUTE_AGENT_LEDGER"])
    row = next(r for r in ledger.rows() if r.run_id == run_id and r.passed)
    ledger.close()
    assert (row.review, row.review_reason) == ("rejected", "Too broad")

    # Then the user changes their mind: apply and commit on a new branch (the README edit stays out).
    for key, value in (("user.name", "Ada"), ("user.email", "ada@example.com")):
        subprocess.run(["git", "config", key, value], cwd=env.root, check=True)
    committed = await command(client, "route-agent.applyAndCommit", {"run_id": run_id})
    assert committed["applied"] is True and committed["branch"] == f"route-agent/{run_id}", committed
    git_out = subprocess.run(["git", "show", "--name-only", "--format=%(trailers:key=Route-Agent-Run,valueonly)", "HEAD"],
                             cwd=env.root, capture_output=True, text=True, check=True).stdout.split()
    assert git_out == [run_id, "app/sync.py"]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=env.root, capture_output=True, text=True, check=True).stdout
    assert status.strip() == "M README.md"
    ledger = open_ledger(os.environ["ROUTE_AGENT_LEDGER"])
    row = next(r for r in ledger.rows() if r.run_id == run_id and r.passed)
    ledger.close()
    assert (row.review, row.commit_id) == ("accepted", committed["commit"])
