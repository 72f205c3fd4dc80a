"""The pipeline's lane-call seam: a `LaneCaller` passed on the `RunRequest` does every lane and
verifier call of a run, and the run closes it. No HTTP is involved."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from route_agent import signals
from route_agent.lanes.client import LaneReply, Role
from route_agent.lanes.errors import LaneError
from route_agent.pipeline import events as ev
from route_agent.pipeline.lane_call import LaneCaller
from route_agent.pipeline.run import RunRequest, run_task
from route_agent.policy.models import Policy
from route_agent.routing import Router
from route_agent.workspace.approvals import record_unsandboxed
from route_agent.workspace.git import collect_change_set, open_repo
from support.repos import FIX_REPLY, make_sync_repo

BRIEF = "fix retry leak in sync worker"
CHECK = [sys.executable, "-c", "from app.sync import Pool, sync\np = Pool()\nsync(p, 3)\nassert p.in_use == 0"]


class ScriptedCaller:
    """Answers each role from a script; records every call and whether it was closed."""

    def __init__(self, replies: dict[str, str | LaneError]) -> None:
        self.replies = replies
        self.calls: list[tuple[Role, str]] = []
        self.closed = False

    async def complete(self, role: Role, messages: list[dict[str, str]], *, on_delta: Callable[[str], None] | None = None) -> LaneReply:
        self.calls.append((role, messages[-1]["content"]))
        answer = self.replies[role]
        if isinstance(answer, LaneError):
            raise answer
        if on_delta is not None:
            on_delta(answer)
        return LaneReply(text=answer, model=f"{role}-model", provider="scripted", input_tokens=10, output_tokens=20,
                         cost_usd=0.001, latency_seconds=0.01, finish_reason="stop")

    async def aclose(self) -> None:
        self.closed = True


def _request(tmp_path: Path, caller: LaneCaller) -> RunRequest:
    repo = open_repo(make_sync_repo(tmp_path / "repo"))
    model = {"provider": "ollama", "model": "scripted", "executor": "oneshot"}  # one scripted diff per call
    policy = Policy.model_validate({"models": {"fast": model, "strong": model}, "verification": {"fast": [{"name": "tests", "kind": "tests", "run": CHECK, "timeout_s": 60}],
                                                     "strong": [{"name": "tests", "kind": "tests", "run": CHECK, "timeout_s": 60}]}})
    router = Router(policy)
    change_set = collect_change_set(repo)
    decision = router.classify(change_set, BRIEF, signals.TestFailures(), requested_lane="fast")
    record_unsandboxed(repo.root)  # the user accepted unsandboxed checks for this repository (issue 12, item 3)
    return RunRequest(repo=repo, policy=policy, router=router, decision=decision, brief=BRIEF, change_set=change_set,
                      sandbox="off", lane_caller=caller)


async def _drive(req: RunRequest) -> list[ev.Event]:
    async with asyncio.timeout(120):  # a hang guard only
        return [event async for event in run_task(req)]


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROUTE_AGENT_CONFIG_DIR", str(tmp_path / "config"))


def test_a_lane_caller_on_the_request_makes_every_call_and_is_closed(tmp_path: Path) -> None:
    caller = ScriptedCaller({"fast": FIX_REPLY, "strong": FIX_REPLY})
    events = asyncio.run(_drive(_request(tmp_path, caller)))
    final = events[-1]
    assert isinstance(final, ev.RunFinished)
    assert (final.result, final.attempts[0]["lane"], final.attempts[0]["model"]) == ("pass", "fast", "fast-model")
    assert final.patch is not None and "pool.release()" in final.patch
    assert [role for role, _ in caller.calls] == ["fast"]
    assert BRIEF in caller.calls[0][1]
    assert caller.closed
    kinds = [e.kind for e in events]
    assert kinds.index("lane_replied") < kinds.index("patch_applied") < kinds.index("check_finished") < kinds.index("attempt_finished")


def test_a_lane_error_from_the_caller_ends_the_run_with_that_error(tmp_path: Path) -> None:
    caller = ScriptedCaller({"fast": LaneError("budget", "the daily budget is spent")})
    events = asyncio.run(_drive(_request(tmp_path, caller)))
    final = events[-1]
    assert isinstance(final, ev.RunFinished)
    assert final.result == "error"
    assert "the daily budget is spent" in final.message
    assert final.attempts[0]["failure"] == "lane_budget"
    assert caller.closed

