"""One run preparation (issue 13, item 1): the CLI and the language server build their `RunRequest`
through `pipeline.prepare.prepare_run`; for the same repository and settings the requests are the same
(apart from the editor's documented escalation UX: a run that starts fast gets one attempt), and the
refusals are typed values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from route_agent.cli.main import route_settings
from route_agent.lsp.routed_runs import run_settings
from route_agent.lsp.server import RouteAgentServer
from route_agent.lsp.settings import Settings
from route_agent.pipeline.prepare import RunRefused, RunSettings, prepare_run
from route_agent.pipeline.run import RunRequest
from route_agent.workspace.approvals import record_unsandboxed
from support.repos import git, make_sync_repo

BRIEF = "fix retry leak in sync worker"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROUTE_AGENT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("ROUTE_AGENT_LEDGER", str(tmp_path / "ledger.sqlite3"))
    monkeypatch.setenv("PREP_TEST_KEY", "sk-prep-0123456789")
    model = {"provider": "openai-compatible", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "PREP_TEST_KEY", "model": "m"}
    policy = tmp_path / "policy.yaml"
    # The verifier too: a run refuses before any call when a model it may call has no key.
    policy.write_text(json.dumps({"models": {"fast": model, "strong": {**model, "model": "s"}, "verifier": {**model, "model": "v"}}}))
    repo = make_sync_repo(tmp_path / "repo")
    record_unsandboxed(repo)  # the runs below use --sandbox off / sandbox: off
    return {"repo": repo, "policy": policy, "tmp": tmp_path}


def _editor(repo: Path, settings: Settings, lane: str = "auto") -> RunSettings:
    server = RouteAgentServer()
    server.settings = settings
    folder = server.add_folder(repo.as_uri())
    assert folder is not None
    return run_settings(server, folder, BRIEF, lane, "lsp-same")  # type: ignore[arg-type]


def _comparable(req: RunRequest) -> dict[str, Any]:
    policy = req.policy.model_dump(mode="json")
    return {
        "repo": str(req.repo.root), "head": req.repo.head, "decision": req.decision.as_dict(), "brief": req.brief,
        "change_set": [f.path for f in req.change_set.files], "environ": dict(req.environ or {}), "sandbox": req.sandbox,
        "buffers": dict(req.buffers), "task_id": req.task_id, "first_attempt_no": req.first_attempt_no,
        "carry": list(req.carry_findings), "policy": policy, "ledger": req.ledger.location if req.ledger else None,
    }


def _prepare(settings: RunSettings) -> RunRequest:
    request = prepare_run(settings).request
    assert request.ledger is not None
    request.ledger.close()
    return request


@pytest.mark.parametrize("lane", ["auto", "strong"])
def test_cli_and_editor_prepare_the_same_request(env: dict[str, Path], lane: str) -> None:
    cli = _prepare(route_settings(BRIEF, env["repo"], env["policy"], lane, str(env["tmp"] / "ledger.sqlite3"), "off", None))
    editor = _prepare(_editor(env["repo"], Settings(policy_path=env["policy"], sandbox="off"), lane))
    a, b = _comparable(cli), _comparable(editor)
    assert a["decision"]["lane"] == ("fast" if lane == "auto" else "strong")
    if a["decision"]["lane"] == "fast":
        # The one documented difference: in the editor the user decides on escalation, so a fast run
        # gets one attempt (RunSettings.ask_before_escalating).
        assert (a["policy"]["routing"]["max_attempts"], b["policy"]["routing"]["max_attempts"]) == (2, 1)
        b["policy"]["routing"]["max_attempts"] = a["policy"]["routing"]["max_attempts"]
    assert a == b


def test_unsaved_buffers_count_in_the_editor_request(env: dict[str, Path]) -> None:
    settings = _editor(env["repo"], Settings(policy_path=env["policy"]))
    edited = RunSettings(**{**settings.__dict__, "buffers": {"app/auth.py": "def login(password):\n    return password\n"}})
    request = _prepare(edited)
    assert "app/auth.py" in [f.path for f in request.change_set.files]
    assert request.buffers == {"app/auth.py": "def login(password):\n    return password\n"}


def test_refusals_are_typed(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    untrusted = _editor(env["repo"], Settings(policy_path=env["policy"], workspace_trusted=False))
    with pytest.raises(RunRefused) as refused:
        prepare_run(untrusted)
    assert refused.value.refusal.kind == "untrusted" and refused.value.plan is None

    monkeypatch.delenv("PREP_TEST_KEY")
    with pytest.raises(RunRefused) as refused:
        prepare_run(route_settings(BRIEF, env["repo"], env["policy"], "auto", None, None, None))
    assert refused.value.refusal.kind == "missing_key" and refused.value.refusal.missing == "PREP_TEST_KEY"
    assert refused.value.plan is not None and refused.value.plan.decision.lane == "fast"

    monkeypatch.setenv("PREP_TEST_KEY", "sk-prep-0123456789")
    (env["tmp"] / "config").mkdir()
    (env["tmp"] / "config" / "policy.yaml").write_text(env["policy"].read_text())  # the user's own models
    marker = env["tmp"] / "ran"
    (env["repo"] / ".route-agent").mkdir()
    (env["repo"] / ".route-agent" / "policy.yaml").write_text(json.dumps({"verification": {"fast": [
        {"name": "marker", "run": ["touch", str(marker)]}]}}))
    git(env["repo"], "add", "-A")
    with pytest.raises(RunRefused) as refused:
        prepare_run(route_settings(BRIEF, env["repo"], None, "auto", None, None, None))
    refusal = refused.value.refusal
    assert refusal.kind == "unapproved" and refusal.workspace == env["repo"]
    assert refusal.approval is not None and "marker" in [c.name for c in refusal.approval.commands]
    assert "you have not approved" in refusal.message and not marker.exists()
