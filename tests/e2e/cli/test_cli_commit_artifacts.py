"""The end of the flow the design notes draw (Pass? -> Commit or PR artifact), through the CLI against
the test model server: `apply --commit` commits exactly the verified patch on a branch with trailers
git parses, `pr-body` describes the run, `ledger mark --rejected` books a review rejection."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from support.repos import FIX_REPLY, make_sync_repo

VERIFIER_90 = '{"verdict": "pass", "confidence": 0.9, "summary": "releases the connection", "concerns": []}'
IDENTITY = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com", "GIT_COMMITTER_NAME": "Ada",
            "GIT_COMMITTER_EMAIL": "ada@example.com"}


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "route_agent", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=240, check=False)


def git_out(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def routed(tmp_path: Path, fake_llm) -> tuple[Path, dict[str, str], str]:  # type: ignore[no-untyped-def]
    """A repository with an unrelated uncommitted README edit and a verified run of a fix to app/sync.py."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(IDENTITY, FAKE_LLM_KEY="test-key-not-secret-abc123", ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"),
               ROUTE_AGENT_CONFIG_DIR=str(tmp_path / "config"), ROUTE_AGENT_LEDGER=str(tmp_path / "ledger.sqlite3"))
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    check = (f"{{name: tests, kind: tests, run: [{sys.executable}, -m, pytest, -q, -p, no:cacheprovider, --junitxml=.route-agent/junit.xml], "
             "parser: junit, report: .route-agent/junit.xml, timeout_s: 120}")
    model = f'provider: openai-compatible, base_url: "{fake_llm.base_url}", api_key_env: FAKE_LLM_KEY, executor: oneshot'
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""
models:
  fast: {{{model}, model: fast-fixer, price_per_mtok: {{input: 1.0, output: 5.0}}}}
  strong: {{{model}, model: strong-unused}}
  verifier: {{provider: openai-compatible, base_url: "{fake_llm.base_url}", api_key_env: FAKE_LLM_KEY, model: verifier-90}}
verification:
  fast: [{check}]
  strong: [{check}]
""")
    proc = cli(["--task", "fix retry leak in sync worker\n\nThe pool runs dry after a few retries.", "--policy", str(policy), "--json"],
               env, repo)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["result"] == "pass"
    return repo, env, out["run_id"]


def test_apply_commit_commits_only_the_patch_on_a_new_branch(routed: tuple[Path, dict[str, str], str]) -> None:
    repo, env, run_id = routed
    main_head = git_out(repo, "rev-parse", "HEAD").strip()
    proc = cli(["apply", run_id, "--commit", "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["applied"] is True and out["branch"] == f"route-agent/{run_id}"
    assert git_out(repo, "symbolic-ref", "--short", "HEAD").strip() == f"route-agent/{run_id}"
    assert git_out(repo, "rev-parse", "HEAD").strip() == out["commit"]
    assert git_out(repo, "rev-parse", "HEAD^").strip() == main_head
    assert git_out(repo, "rev-parse", "main").strip() == main_head, "the user's branch moved"
    assert git_out(repo, "show", "--name-only", "--format=", "HEAD").split() == ["app/sync.py"]
    assert git_out(repo, "status", "--porcelain").split("\n")[0].strip() == "M README.md", "the unrelated edit must stay uncommitted"
    message = git_out(repo, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == "Fix retry leak in sync worker"
    assert "The pool runs dry after a few retries." in message
    trailers = dict(line.split(": ", 1) for line in subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=message, cwd=repo, capture_output=True, text=True, check=True).stdout.splitlines())
    assert trailers["Route-Agent-Run"] == run_id
    assert trailers["Route-Agent-Lane"] == "fast (fast-fixer)"
    assert trailers["Route-Agent-Checks"] == "tests pass"
    assert trailers["Route-Agent-Risk"].isdigit() and trailers["Route-Agent-Cost"].startswith("$")
    rows = sqlite3.connect(env["ROUTE_AGENT_LEDGER"]).execute("SELECT review, commit_id FROM attempts WHERE passed=1").fetchall()
    assert rows == [("accepted", out["commit"])]


def test_apply_commit_refuses_when_the_patch_files_have_the_users_edits(routed: tuple[Path, dict[str, str], str]) -> None:
    repo, env, run_id = routed
    sync = repo / "app" / "sync.py"
    sync.write_text(sync.read_text() + "\n# my own note\n")
    before = git_out(repo, "rev-parse", "HEAD"), sync.read_text()
    proc = cli(["apply", run_id, "--commit"], env, repo)
    assert proc.returncode == 2
    assert "uncommitted changes of yours (app/sync.py)" in proc.stderr and "Traceback" not in proc.stderr
    assert (git_out(repo, "rev-parse", "HEAD"), sync.read_text()) == before, "something was written"
    assert git_out(repo, "symbolic-ref", "--short", "HEAD").strip() == "main"


def test_apply_commit_from_a_detached_head_creates_the_branch(routed: tuple[Path, dict[str, str], str]) -> None:
    repo, env, run_id = routed
    subprocess.run(["git", "checkout", "-q", "--detach"], cwd=repo, check=True)
    proc = cli(["apply", run_id, "--commit", "--branch", "fix/retry-leak"], env, repo)
    assert proc.returncode == 0, proc.stderr
    assert "on branch fix/retry-leak" in proc.stdout
    assert git_out(repo, "symbolic-ref", "--short", "HEAD").strip() == "fix/retry-leak"


def test_pr_body_and_a_review_rejection(routed: tuple[Path, dict[str, str], str]) -> None:
    repo, env, run_id = routed
    proc = cli(["pr-body", run_id], env, repo)
    assert proc.returncode == 0, proc.stderr
    body = proc.stdout
    assert body.startswith("## Fix retry leak in sync worker\n")
    assert "> The pool runs dry after a few retries." in body
    assert "**Risk score " in body and "| files_touched |" in body
    assert "**fast** lane, `fast-fixer`" in body and "checks: tests pass" in body
    assert "verifier: pass, confidence 0.90: releases the connection" in body
    assert f"Run `{run_id}`" in body

    marked = cli(["ledger", "mark", run_id, "--rejected", "fixes the symptom, not the pool"], env, repo)
    assert marked.returncode == 0, marked.stderr
    report = json.loads(cli(["ledger", "report", "--json"], env, repo).stdout)
    fast = next(lane for lane in report["lanes"] if lane["lane"] == "fast")
    assert fast["review_rejection_rate"] == 1.0
    reason = sqlite3.connect(env["ROUTE_AGENT_LEDGER"]).execute("SELECT review_reason FROM attempts WHERE passed=1").fetchone()[0]
    assert reason == "fixes the symptom, not the pool"
    unknown = cli(["ledger", "mark", "nosuchrun", "--rejected", "x"], env, repo)
    assert unknown.returncode == 2 and "no passing attempt of run nosuchrun" in unknown.stderr
