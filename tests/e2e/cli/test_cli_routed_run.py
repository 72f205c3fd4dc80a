"""A whole routed run through the CLI against the OpenAI-compatible test server on 127.0.0.1:
lane call, patch in a worktree, checks, tamper detection, the verifier, escalation, the ledger,
and `route-agent apply`. The user's tree and .git stay byte-identical until they apply."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.repos import FIX_REPLY, SKIP_TEST_REPLY, fingerprint, held_worktrees, make_sync_repo, pool_worktrees

VERIFIER_90 = '{"verdict": "pass", "confidence": 0.9, "summary": "releases the connection", "concerns": []}'
VERIFIER_40 = '{"verdict": "pass", "confidence": 0.4, "summary": "not sure", "concerns": ["no test for release"]}'


def write_policy(path: Path, base_url: str, fast: str, strong: str, verifier: str) -> Path:
    check = (
        f"{{name: tests, kind: tests, run: [{sys.executable}, -m, pytest, -q, -p, no:cacheprovider, --junitxml=.route-agent/junit.xml], "
        "parser: junit, report: .route-agent/junit.xml, timeout_s: 120}"
    )
    path.write_text(f"""
models:
  fast: {{provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY, model: {fast}, executor: oneshot, price_per_mtok: {{input: 1.0, output: 5.0}}}}
  strong: {{provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY, model: {strong}, executor: oneshot, price_per_mtok: {{input: 3.0, output: 15.0}}}}
  verifier: {{provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY, model: {verifier}}}
verification:
  fast: [{check}]
  strong: [{check}]
""")
    return path


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "route_agent", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=240, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    out.update(FAKE_LLM_KEY="test-key-not-secret-abc123", ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"),
               ROUTE_AGENT_CONFIG_DIR=str(tmp_path / "config"), ROUTE_AGENT_LEDGER=str(tmp_path / "ledger.sqlite3"))
    return out


def test_fast_lane_skips_the_test_then_strong_lane_fixes_it(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-skipper", reply=SKIP_TEST_REPLY)
    fake_llm.script("strong-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-skipper", "strong-fixer", "verifier-90")
    before = fingerprint(repo)

    proc = run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["lane"] == "fast"
    assert out["result"] == "pass"
    assert [a["lane"] for a in out["attempts"]] == ["fast", "strong"]
    fast, strong = out["attempts"]
    assert fast["passed"] is False and fast["escalated"] is True and "tamper" in fast["escalation_reasons"]
    assert strong["passed"] is True and strong["confidence"] == 0.9
    assert strong["model"] == "strong-fixer" and strong["input_tokens"] > 0 and strong["cost_usd"] > 0
    assert out["escalations"] == [{"from": "fast", "to": "strong", "reasons": fast["escalation_reasons"]}]
    assert fingerprint(repo) == before, "the user's tree or .git changed before they applied anything"
    assert not held_worktrees(tmp_path / "state"), "a worktree is still held after the run"
    # the escalation reset the same leased worktree: one checkout, and the transcript said so once
    assert len(pool_worktrees(tmp_path / "state")) == 1
    assert proc.stderr.count("preparing a worktree for this repository, once:") == 1, proc.stderr

    ledger = json.loads(run_cli(["ledger", "report", "--json"], env, repo).stdout)
    lanes = {lane["lane"]: lane for lane in ledger["lanes"]}
    assert (lanes["fast"]["attempts"], lanes["fast"]["passed"], lanes["fast"]["escalations"]) == (1, 0, 1)
    assert (lanes["strong"]["attempts"], lanes["strong"]["passed"]) == (1, 1)
    assert lanes["fast"]["common_failure"] == "tamper"

    applied = run_cli(["apply", out["run_id"]], env, repo)
    assert applied.returncode == 0, applied.stderr
    assert "pool.release()" in (repo / "app" / "sync.py").read_text()
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=repo, capture_output=True, text=True, check=False)
    assert test.returncode == 0, test.stdout


def test_a_detached_head_routes_and_applies(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    """A CI checkout of a pull request (detached HEAD): the routed run and apply work, HEAD stays detached."""
    repo = make_sync_repo(tmp_path / "repo")
    subprocess.run(["git", "checkout", "-q", "--detach"], cwd=repo, check=True)
    fake_llm.script("fast-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-fixer", "strong-unused", "verifier-90")
    proc = run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["result"] == "pass"
    applied = run_cli(["apply", out["run_id"]], env, repo)
    assert applied.returncode == 0, applied.stderr
    assert "pool.release()" in (repo / "app" / "sync.py").read_text()
    head = subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=repo, capture_output=True, text=True, check=False)
    assert head.returncode == 1, "apply moved HEAD onto a branch"


def test_fast_lane_request_over_the_thresholds_runs_fast_and_is_booked_as_an_override(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-fixer", "strong-unused", "verifier-90")
    policy.write_text(policy.read_text() + "routing: {fast_max_score: 0, strong_min_score: 1}\n")  # every task strong by score
    auto = json.loads(run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--dry-run", "--json"], env, repo).stdout)
    assert auto["lane"] == "strong" and auto["always_strong"] == []
    proc = run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--lane", "fast", "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["lane"], out["lane_override"], out["result"]) == ("fast", True, "pass")
    assert [a["model"] for a in out["attempts"]] == ["fast-fixer"]
    import sqlite3
    rows = sqlite3.connect(env["ROUTE_AGENT_LEDGER"]).execute("SELECT lane, signals FROM attempts").fetchall()
    assert [(lane, json.loads(signals).get("lane_override")) for lane, signals in rows] == [("fast", "fast")]


@pytest.mark.parametrize("role", ["strong", "verifier"])
def test_a_missing_key_for_any_model_the_run_needs_is_named_before_the_first_call(tmp_path: Path, env: dict[str, str], fake_llm,  # type: ignore[no-untyped-def]
                                                                                  role: str) -> None:
    """The fast lane's key is set, the strong lane's (for an escalation) or the verifier's is not: the
    run used to pay for the fast lane and then end 'fail'. Now no model is called and the variable is named."""
    repo = make_sync_repo(tmp_path / "repo")
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-fixer", "strong-fixer", "verifier-90")
    text = policy.read_text()
    line = next(line for line in text.splitlines() if line.strip().startswith(f"{role}:"))
    policy.write_text(text.replace(line, line.replace("api_key_env: FAKE_LLM_KEY", "api_key_env: SECOND_PROVIDER_KEY")))
    proc = run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["result"] == "dry-run" and out["lane"] == "fast"
    assert out["note"].startswith("dry run: SECOND_PROVIDER_KEY is not set, so no model was called")
    assert (f"the {role} lane: strong-fixer" if role == "strong" else "the verifier: verifier-90") in out["note"]
    assert fake_llm.requests == [], "a model was called before the missing key was named"


def test_human_transcript_has_the_design_notes_shape(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-fixer", "strong-unused", "verifier-90")
    proc = run_cli(["route", "--task", "fix retry leak in sync worker", "--policy", str(policy)], env, repo)
    assert proc.returncode == 0, proc.stderr
    keys = [line.split(":", 1)[0] for line in proc.stdout.splitlines() if line and not line.startswith(" ")]
    for key in ("classifier", "risk_score", "selected_lane", "verification", "result", "cost_usd_estimate", "latency_seconds"):
        assert key in keys
    assert "result: pass" in proc.stdout
    assert "escalation:" not in proc.stdout


@pytest.mark.parametrize(
    "verifier_reply",
    [pytest.param(VERIFIER_40, id="confidence-0.4"), pytest.param("Looks good to me!", id="garbage")],
)
def test_passing_fast_patch_with_a_doubtful_verifier_escalates(tmp_path: Path, env: dict[str, str], fake_llm, verifier_reply: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-fixer", reply=FIX_REPLY)
    fake_llm.script("strong-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier", reply=verifier_reply)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-fixer", "strong-fixer", "verifier")
    proc = run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--json"], env, repo)
    out = json.loads(proc.stdout)
    fast = out["attempts"][0]
    assert fast["checks"][0]["status"] == "pass"
    assert fast["escalated"] is True and "low_confidence_summary" in fast["escalation_reasons"]
    assert [a["lane"] for a in out["attempts"]] == ["fast", "strong"]
    # the strong attempt gets the same doubtful verifier: a failed strong attempt stops, never loops
    assert out["result"] == "fail" and proc.returncode == 1
    assert len(out["attempts"]) == 2
    # each attempt's patch was staged while its checks ran, and dropped when it was not accepted
    runs = tmp_path / "state" / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_failed_strong_attempt_stops_with_findings(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("skipper", reply=SKIP_TEST_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "skipper", "skipper", "verifier-90")
    proc = run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy)], env, repo)
    assert proc.returncode == 1
    assert "result: fail" in proc.stdout
    assert "escalation: fast -> strong" in proc.stdout
    assert "skip-marker" in proc.stdout


def test_plan_fast_only_stops_after_a_failed_fast_attempt_and_the_ledger_records_the_plan(  # type: ignore[no-untyped-def]
        tmp_path: Path, env: dict[str, str], fake_llm) -> None:
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-skipper", reply=SKIP_TEST_REPLY)
    fake_llm.script("strong-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-skipper", "strong-fixer", "verifier-90")
    policy.write_text(policy.read_text() + "routing: {plan: fast-only}\n")

    proc = run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--json"], env, repo)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["plan"] == "fast-only" and out["result"] == "fail"
    assert [a["lane"] for a in out["attempts"]] == ["fast"], "the plan stops instead of paying for a strong attempt"
    assert "plan:fast-only" in out["attempts"][0]["escalation_reasons"] and not out["escalations"]
    assert not [r for r in fake_llm.requests if r.model == "strong-fixer"]
    ledger = json.loads(run_cli(["ledger", "report", "--json"], env, repo).stdout)
    assert ledger["plans"] == {"fast-only": 1}
