"""Provider chaos (issue 8, part 3): 200 routed tasks in process (route_agent.pipeline.run_task)
against the OpenAI-compatible test server on 127.0.0.1, each lane's model scripted with a fault drawn
from a seeded RNG: 429s, 5xx, resets, truncated streams, error events, slow bytes, keep-alives only,
HTML with 200, `length`. Asserted: no patch from an incomplete reply ever reaches a worktree, the
ledger holds exactly one row per attempt (none lost, none duplicated), every task ends in pass, fail
or a clear error, and the user's repository is byte-identical at the end. stamina's testing mode
removes the retry waits (the retry count and decisions are unchanged)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import stamina
from safety_support import BAIT_ENV, KEY, PY, VERIFIER_90, policy_data, write_policy

from route_agent import signals
from route_agent.ledger import open_ledger
from route_agent.pipeline import events as ev
from route_agent.pipeline.run import RunRequest, run_task
from route_agent.policy import PolicyCache
from route_agent.routing import Router
from route_agent.workspace.git import collect_change_set, open_repo
from support.repos import FIX_REPLY, fingerprint, held_worktrees, make_sync_repo

TASKS = 200
SEED = 20261126
BUDGET_S = 600.0  # a hang guard, not a speed requirement (the 200 tasks are always all run)
INCOMPLETE = {"cut", "no-done", "error-event", "keepalive-only", "html", "length", "status-500", "status-429-long"}
FAULTS: dict[str, dict[str, Any]] = {
    "ok": {"reply": FIX_REPLY},
    "status-429-once": {"status": 429, "retry_after": "2", "times": 1, "reply": FIX_REPLY},
    "status-429-long": {"status": 429, "retry_after": "86400"},
    "status-500": {"status": 500, "error": "internal error"},
    "status-503-once": {"status": 503, "times": 1, "reply": FIX_REPLY},
    "status-529-once": {"status": 529, "times": 1, "reply": FIX_REPLY},
    "cut": {"mode": "cut", "reply": FIX_REPLY},
    "cut-once": {"mode": "cut", "reply": FIX_REPLY, "times": 1},
    "no-done": {"mode": "no-done", "reply": FIX_REPLY},
    "error-event": {"mode": "error-event", "reply": FIX_REPLY},
    "keepalive-only": {"mode": "keepalive-only", "duration": 1.0},
    "html": {"mode": "html"},
    "length": {"finish_reason": "length", "reply": FIX_REPLY},
    "slow-bytes": {"delay": 0.3, "chunks": 40, "reply": FIX_REPLY},
    "garbage-reply": {"reply": "I could not find the bug, sorry."},
}


def chaos_policy(base_url: str, fast: str, strong: str) -> dict[str, Any]:
    data = policy_data(base_url, fast=fast, strong=strong, checks=[
        {"name": "tests", "kind": "tests", "run": [PY, "-c", "from app.sync import Pool, sync\np = Pool()\nsync(p, 3)\n"
                                                   "assert p.in_use == 0"], "timeout_s": 30}])
    for spec in data["models"].values():
        spec.update(idle_timeout_s=0.5, timeout_s=20)
    return data


async def drive(req: RunRequest) -> list[ev.Event]:
    out: list[ev.Event] = []
    async with asyncio.timeout(60):
        async for event in run_task(req):
            out.append(event)
    return out


@pytest.fixture
def no_retry_waits():  # type: ignore[no-untyped-def]
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


def test_provider_chaos_two_hundred_routed_tasks(tmp_path: Path, fake_llm, no_retry_waits, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROUTE_AGENT_CONFIG_DIR", str(tmp_path / "config"))
    repo_root = make_sync_repo(tmp_path / "repo")
    before = fingerprint(repo_root)
    repo = open_repo(repo_root)
    change_set = collect_change_set(repo)
    ledger_path = tmp_path / "ledger.sqlite3"
    ledger = open_ledger(str(ledger_path))
    environ = {k: v for k, v in os.environ.items() if not k.endswith(("_KEY", "_TOKEN", "_SECRET"))} | BAIT_ENV
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    rnd = random.Random(SEED)
    names = list(FAULTS)
    tally: dict[str, int] = {"pass": 0, "fail": 0, "error": 0}
    faults_seen: dict[str, int] = {}
    expected_rows = 0
    passes = 0
    started = time.monotonic()
    try:
        for i in range(TASKS):
            assert time.monotonic() - started < BUDGET_S, f"chaos ran out of its time budget after {i} tasks"
            fast_fault, strong_fault = rnd.choice(names), rnd.choice(names)
            faults_seen[fast_fault] = faults_seen.get(fast_fault, 0) + 1
            fast, strong = f"fast-{i}", f"strong-{i}"
            fake_llm.script(fast, **FAULTS[fast_fault])
            fake_llm.script(strong, **FAULTS[strong_fault])
            policy_file = write_policy(tmp_path / "policies" / f"{i}.yaml", chaos_policy(fake_llm.base_url, fast, strong))
            loaded = PolicyCache().load(policy_file)
            router = Router(loaded.policy)
            decision = router.classify(change_set, "fix retry leak in sync worker", signals.TestFailures(), requested_lane="auto")
            req = RunRequest(repo=repo, policy=loaded.policy, router=router, decision=decision, brief="fix retry leak in sync worker",
                             change_set=change_set, ledger=ledger, environ=environ, run_id=f"chaos{i:04d}")
            events = asyncio.run(drive(req))
            final = events[-1]
            assert isinstance(final, ev.RunFinished), f"task {i} ({fast_fault}/{strong_fault}) ended without a result"
            assert final.result in tally and final.message, final
            tally[final.result] += 1
            expected_rows += len(final.attempts)
            # per attempt: a patch reaches a worktree only after a complete reply
            fault_of = {"fast": fast_fault, "strong": strong_fault}
            lane = None
            replied = False
            for event in events:
                if isinstance(event, ev.AttemptStarted):
                    lane, replied = event.lane, False
                elif isinstance(event, ev.LaneReplied):
                    replied = True
                    assert fault_of[str(lane)] not in INCOMPLETE, f"task {i}: a {fault_of[str(lane)]} reply was taken as complete"
                elif isinstance(event, ev.PatchApplied):
                    assert replied, f"task {i}: a patch was applied without a complete reply"
            if final.result == "pass":
                passes += 1
                assert fault_of[str(final.attempts[-1]["lane"])] not in INCOMPLETE
            if final.result == "error":
                assert final.attempts and final.attempts[-1]["result"] == "error"
    finally:
        ledger.close()
    elapsed = time.monotonic() - started
    db = sqlite3.connect(ledger_path)
    rows = db.execute("SELECT run_id, attempt_no FROM attempts").fetchall()
    db.close()
    assert len(rows) == expected_rows, f"ledger rows {len(rows)} != attempts {expected_rows}"
    assert len(set(rows)) == len(rows), "duplicated ledger rows"
    assert fingerprint(repo_root) == before
    assert not held_worktrees(tmp_path / "state"), "a worktree is still held after the runs"
    runs = tmp_path / "state" / "runs"
    assert len([p for p in runs.glob("*") if p.is_dir()] if runs.exists() else []) == passes
    for request in fake_llm.requests:
        assert KEY not in request.body and request.headers.get("authorization") == f"Bearer {KEY}"
    print("\nprovider chaos:", json.dumps({"tasks": TASKS, "seed": SEED, "results": tally, "ledger_rows": len(rows),
                                           "http_requests": len(fake_llm.requests), "seconds": round(elapsed, 1),
                                           "fast_lane_faults": faults_seen}))
    assert sum(tally.values()) == TASKS
