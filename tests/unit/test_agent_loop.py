"""The built-in agent loop against real commands in the bubblewrap sandbox, driven by a scripted
model (a list of replies): the reply contract, limits, what the model is shown, and cancellation."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from route_agent.lanes import agent as agent_mod
from route_agent.lanes.agent import AgentSession, AgentStep, format_step, parse_reply, run_agent
from route_agent.lanes.errors import LaneError
from route_agent.policy.models import AgentLimits
from route_agent.verify.checks import SandboxInfo, probe_sandbox
from support.wait import wait_for

KEY = "sk-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh2jKl5m"


@dataclass
class Reply:
    text: str
    model: str = "scripted"
    input_tokens: int = 10
    output_tokens: int = 5
    cost_usd: float = 0.001


class ScriptedModel:
    """Answers each call with the next reply and keeps a copy of every request's messages."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict[str, str]]] = []

    async def complete(self, role: Any, messages: list[dict[str, str]]) -> Reply:
        self.requests.append([dict(m) for m in messages])
        if not self.replies:
            return Reply("```bash\nsubmit\n```")
        return Reply(self.replies.pop(0))


def bash(command: str) -> str:
    return f"Next I run this.\n\n```bash\n{command}\n```\n"


def git_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (root / ".env").write_text(f"OPENAI_API_KEY={KEY}\n")
    (root / ".gitignore").write_text(".env\n")
    subprocess.run(["git", "-C", str(root), "add", "calc.py", ".gitignore"], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], check=True)
    return root


def session(root: Path, **kw: Any) -> AgentSession:
    limits = kw.pop("limits", AgentLimits(max_steps=10, command_timeout_s=30))
    return AgentSession(lane="fast", worktree=root, brief="add() subtracts; make it add", limits=limits,
                        max_context_tokens=kw.pop("max_context_tokens", 32000), max_output_tokens=1024, **kw)


@pytest.fixture(autouse=True)
def sandbox_available() -> None:
    info = probe_sandbox()
    assert info.available, f"these tests need bubblewrap (scripts/setup-system.sh installs it): {info.reason}"


@pytest.mark.parametrize(
    ("text", "commands"),
    [
        pytest.param("```bash\nls -la\n```", ["ls -la"], id="one-block"),
        pytest.param("I think so.\n```sh\npython -m pytest -q\n```\nthen we see", ["python -m pytest -q"], id="sh-block"),
        pytest.param("no block at all", [], id="none"),
        pytest.param("```bash\nls\n```\n```bash\npwd\n```", ["ls", "pwd"], id="two"),
        pytest.param("```python\nprint(1)\n```", [], id="other-language"),
        pytest.param("```bash\nsubmit\n```", ["submit"], id="submit"),
        pytest.param("````bash\ncat <<'EOF' > a.md\n```\nx\n```\nEOF\n````", ["cat <<'EOF' > a.md\n```\nx\n```\nEOF"], id="longer-fence"),
    ],
)
def test_parse_reply(text: str, commands: list[str]) -> None:
    assert parse_reply(text) == commands


def test_step_line_shape() -> None:
    step = AgentStep("fast", 3, 40, "command", command="python -m pytest -q tests/test_sync.py", exit_code=1, duration_s=0.84, status="fail")
    assert format_step(step) == "step 3/40: python -m pytest -q tests/test_sync.py -> exit 1, 0.8 s"
    assert format_step(AgentStep("fast", 4, 40, "submit")) == "step 4/40: submit"
    assert "timeout" in format_step(AgentStep("fast", 2, 40, "command", command="sleep 9", status="timeout", duration_s=1.0))


async def test_multi_step_session_edits_the_worktree_and_submits(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    model = ScriptedModel([
        bash("cat calc.py"),
        bash("python3 -c 'import calc; assert calc.add(2, 3) == 5'"),
        bash("sed -i 's/a - b/a + b/' calc.py"),
        bash("python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo fixed"),
        bash("submit"),
    ])
    steps: list[AgentStep] = []
    transcript = tmp_path / "transcript.jsonl"
    outcome = await run_agent(session(root, transcript=transcript), model, steps.append)
    assert outcome.status == "submitted" and outcome.steps == 5 and outcome.sandboxed
    assert (root / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert [s.kind for s in steps] == ["command"] * 4 + ["submit"]
    assert [s.exit_code for s in steps[:4]] == [0, 1, 0, 0]
    assert outcome.input_tokens == 50 and outcome.output_tokens == 25 and outcome.cost_usd == pytest.approx(0.005)
    # What the model saw: the output of each command as the next user message.
    assert "return a - b" in model.requests[1][-1]["content"]
    assert model.requests[2][-1]["content"].startswith("exit code: 1")
    assert "AssertionError" in model.requests[2][-1]["content"]
    assert "fixed" in model.requests[4][-1]["content"]
    assert outcome.tried[1].endswith("-> exit 1")
    system = model.requests[0][0]["content"]
    assert "exactly ONE fenced block" in system and "submit" in system and "no network" in system
    assert "add() subtracts" in model.requests[0][1]["content"]
    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [line["role"] for line in lines[:3]] == ["system", "user", "assistant"] and len(lines) == 2 + 2 * 4 + 1


async def test_zero_or_two_blocks_get_a_reminder_that_counts_as_a_step(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    model = ScriptedModel(["I will now fix it.", bash("ls") + bash("pwd"), bash("submit")])
    steps: list[AgentStep] = []
    outcome = await run_agent(session(root), model, steps.append)
    assert outcome.status == "submitted" and outcome.steps == 3
    assert [s.kind for s in steps] == ["format", "format", "submit"]
    assert "it contained none" in model.requests[1][-1]["content"]
    assert "it contained 2" in model.requests[2][-1]["content"]


async def test_max_steps_ends_the_session_with_a_reason(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    model = ScriptedModel([bash("true")] * 10)
    outcome = await run_agent(session(root, limits=AgentLimits(max_steps=3)), model)
    assert outcome.status == "max_steps" and outcome.steps == 3 and len(model.requests) == 3
    assert "all 3 steps" in outcome.message


async def test_cat_env_is_withheld_and_a_printed_key_is_redacted_in_every_later_request(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    (root / "show.py").write_text(f"print('token is {KEY}')\n")
    model = ScriptedModel([bash("cat .env"), bash("python3 show.py"), bash("grep -r OPENAI . || true"), bash("ls -a")])
    outcome = await run_agent(session(root), model)
    assert outcome.status == "submitted"
    everything = json.dumps(model.requests)
    assert KEY not in everything
    assert "[WITHHELD: the output of a command that reads .env" in model.requests[1][-1]["content"]
    assert "[REDACTED:" in model.requests[2][-1]["content"]
    assert "WITHHELD" in model.requests[3][-1]["content"]
    assert ".env" in model.requests[4][-1]["content"], "a file name alone is not withheld"
    kinds = {item["kind"] for item in outcome.redactions}
    assert kinds == {"withheld", "redacted"}


async def test_the_sandbox_blocks_the_network_and_writes_outside_the_worktree(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    outside = tmp_path / "outside.txt"
    git_dir_file = root / ".git" / "hooks" / "pre-commit"
    model = ScriptedModel([
        bash("python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)\""),
        bash(f"echo pwned > {outside}"),
        bash(f"echo pwned > {git_dir_file}"),
        bash("echo ok > inside.txt && echo $TMPDIR && touch $TMPDIR/scratch && echo tmp-ok"),
        bash("env"),
    ])
    outcome = await run_agent(session(root, environ={"PATH": "/usr/local/bin:/usr/bin:/bin", "OPENAI_API_KEY": KEY, "HOME": str(tmp_path)}), model)
    assert outcome.status == "submitted"
    net, write_out, write_git, inside, env = (r[-1]["content"] for r in model.requests[1:6])
    assert not net.startswith("exit code: 0") and "Network is unreachable" in net
    assert not write_out.startswith("exit code: 0") and not outside.exists()
    assert not write_git.startswith("exit code: 0") and not git_dir_file.exists()
    assert inside.startswith("exit code: 0") and "tmp-ok" in inside and (root / "inside.txt").read_text() == "ok\n"
    assert "OPENAI_API_KEY" not in env and KEY not in env


async def test_without_a_sandbox_nothing_runs_unless_the_user_allowed_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = git_repo(tmp_path)
    monkeypatch.setattr(agent_mod, "probe_sandbox", lambda: SandboxInfo(False, "bubblewrap (bwrap) is not installed"))
    model = ScriptedModel([bash("touch ran.txt")])
    refused = await run_agent(session(root), model)
    assert refused.status == "sandbox_unavailable" and not model.requests and not (root / "ran.txt").exists()
    assert "apt-get install bubblewrap" in refused.message and "executor: oneshot" in refused.message
    assert "allow_unsandboxed: true" in refused.message

    allowed = await run_agent(session(root, allow_unsandboxed=True), ScriptedModel([bash("touch ran.txt")]))
    assert allowed.status == "submitted" and not allowed.sandboxed and (root / "ran.txt").exists()


async def test_output_is_capped_keeping_head_and_tail(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    command = "python3 -c \"print('HEAD'); print('x' * 100000); print('TAIL')\""
    model = ScriptedModel([bash(command)])
    await run_agent(session(root, limits=AgentLimits(output_limit_bytes=2048)), model)
    seen = model.requests[1][-1]["content"]
    assert "HEAD" in seen and "TAIL" in seen and "bytes omitted" in seen
    assert len(seen) < 2048 + 300


async def test_oldest_outputs_are_dropped_to_fit_the_context_and_the_model_is_told(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    big = bash("python3 -c \"print('y' * 3000)\"")
    model = ScriptedModel([big] * 6)
    limits = AgentLimits(max_steps=8, output_limit_bytes=4096)
    await run_agent(session(root, limits=limits, max_context_tokens=4096), model)
    budget_chars = (4096 - 1024) * 4
    for request in model.requests:
        assert sum(len(m["content"]) + 16 for m in request) <= budget_chars
    last = model.requests[-1]
    assert any("dropped to stay within the context window" in m["content"] for m in last)
    assert "y" * 3000 in last[-1]["content"], "the newest output is kept"


async def test_a_timed_out_command_is_killed_and_reported(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    model = ScriptedModel([bash("sleep 30")])
    outcome = await run_agent(session(root, limits=AgentLimits(command_timeout_s=1)), model)
    assert "timed out after 1 s" in model.requests[1][-1]["content"]
    assert outcome.tried == ["sleep 30 -> timeout"]


async def test_a_spent_budget_ends_the_session_with_the_lane_error(tmp_path: Path) -> None:
    root = git_repo(tmp_path)

    class Spent:
        async def complete(self, role: Any, messages: list[dict[str, str]]) -> Reply:
            raise LaneError("budget", "the per-task budget of $0.01 is spent")

    outcome = await run_agent(session(root), Spent())
    assert outcome.status == "budget" and outcome.error is not None and outcome.error.kind == "budget"
    assert "per-task budget" in outcome.message


async def test_cancelling_mid_command_kills_it_and_leaves_nothing(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    marker = f"route-agent-cancel-{tmp_path.name}"
    model = ScriptedModel([bash(f"touch started; exec -a {marker} sleep 60")])
    task = asyncio.ensure_future(run_agent(session(root), model))
    await wait_for((root / "started").exists, timeout=10, what="the command to start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    assert left.stdout == "", f"processes left behind: {left.stdout}"


async def test_a_daemon_started_by_a_command_does_not_outlive_its_step(tmp_path: Path) -> None:
    root = git_repo(tmp_path)
    marker = f"route-agent-daemon-{tmp_path.name}"
    model = ScriptedModel([bash(f"setsid -f bash -c 'exec -a {marker} sleep 120' < /dev/null > /dev/null 2>&1; echo started"),
                           bash("true")])
    outcome = await run_agent(session(root), model)
    assert outcome.status == "submitted" and "started" in model.requests[1][-1]["content"]
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    assert left.stdout == "", "a setsid daemon outlived the sandboxed command"
