"""What the built-in agent loop costs per step beyond model and command time, and its memory over a
long session (issue 11's performance figures).

The loop runs on a worktree of the example repository (examples/make-demo-repo.sh), driven through
the real lane client over HTTP by the OpenAI-compatible test server, started as a separate process on
127.0.0.1 so that its memory is not ours. Every command runs in the bubblewrap sandbox when it is
available.

1. Per-step overhead: a session of cheap commands (`true`). For each step, the time between two step
   events minus the model call (client side, HTTP included) and the command (process time, sandbox
   start-up included) is the loop's own work: parsing the reply, the never-send rules and the secret
   scan on the output, fitting the context, the transcript, the event. Target: median <= 5 ms.
2. Sandbox start-up per command, reported apart: a `true` command through the check runner with and
   without bubblewrap; the difference is what the sandbox adds.
3. Memory: a 200-step session whose every command prints 100 KB; resident memory (RSS) after step 1
   and after step 200. Outputs are capped and the oldest are dropped to fit the context, so it should
   stay flat.
4. The relay an external agent reaches its model through (lanes/relay.py): the same streamed chat
   completion (a 2 KB prompt, a 1 KB answer), sent by an OpenAI-style client straight to the server
   and through the relay (token check, outbound gate, key swap, metering); medians of N calls each,
   interleaved. What it adds is paid once per model call of the agent.

    .venv/bin/python benchmarks/bench_agent.py [--steps N] [--long-steps N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from route_agent.lanes.agent import AgentSession, AgentStep, run_agent  # noqa: E402
from route_agent.lanes.client import LaneClient  # noqa: E402
from route_agent.lanes.relay import ModelRelay  # noqa: E402
from route_agent.policy.models import AgentLimits, Check, Models, ModelSpec, Policy  # noqa: E402
from route_agent.verify.checks import probe_sandbox, run_one  # noqa: E402
from route_agent.workspace.git import open_repo  # noqa: E402
from route_agent.workspace.worktree import create_worktree, remove_worktree  # noqa: E402

KEY = "bench-key-not-secret"


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def reply(command: str) -> str:
    return f"Next.\n\n```bash\n{command}\n```\n"


class FakeServerProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakeserver" / "server.py")], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, replies: list[str]) -> None:
        # Reset first: the server keeps every request it received, and this is a long-lived process.
        body = json.dumps({model: {"replies": replies}}).encode()
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{self.port}/_reset", data=b"{}", method="POST")).read()
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{self.port}/_script", data=body, method="POST")).read()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def session(server: FakeServerProcess, worktree: Path, model: str, steps: int, on_step: object) -> float:
    spec = ModelSpec(provider="openai-compatible", model=model, base_url=server.base_url, api_key_env="BENCH_KEY", max_context_tokens=32000)
    policy = Policy(models=Models(fast=spec, strong=spec))
    policy = policy.model_copy(update={"budgets": policy.budgets.model_copy(update={"per_task_usd": None, "per_day_usd": None})})
    environ = {**os.environ, "BENCH_KEY": KEY}
    limits = AgentLimits(max_steps=steps, command_timeout_s=60, wall_timeout_s=3600)
    async with LaneClient(policy, environ=environ) as client:
        started = time.monotonic()
        outcome = await run_agent(AgentSession(lane="fast", worktree=worktree, brief="benchmark session", limits=limits,
                                               max_context_tokens=32000, max_output_tokens=4096, environ=environ),
                                  client, on_step)  # type: ignore[arg-type]
        assert outcome.status == "max_steps" and outcome.steps == steps, outcome.message
        return time.monotonic() - started


async def per_step_overhead(server: FakeServerProcess, worktree: Path, steps: int) -> dict[str, float]:
    server.script("bench-true", [reply("true")])
    marks: list[tuple[float, AgentStep]] = []
    start = time.monotonic()
    await session(server, worktree, "bench-true", steps, lambda step: marks.append((time.monotonic(), step)))
    overheads, models, commands = [], [], []
    previous = start
    for when, step in marks:
        overheads.append(when - previous - step.model_s - step.duration_s)
        models.append(step.model_s)
        commands.append(step.duration_s)
        previous = when
    # The first step also carries the session's start (sandbox probe, scratch directory, opening messages).
    return {"overhead": statistics.median(overheads[1:]), "model": statistics.median(models), "command": statistics.median(commands),
            "first": overheads[0]}


async def sandbox_startup(worktree: Path, runs: int) -> tuple[float, float]:
    """`true` as the agent loop runs it (bubblewrap, its PID namespace, no supervisor) against a bare
    `true` process started the same way (asyncio subprocess, pipes)."""
    check = Check(name="bench", run=["true"], timeout_s=30)
    sandbox = probe_sandbox()
    bare: list[float] = []
    boxed: list[float] = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    for _ in range(runs):
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec("true", cwd=worktree, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        await proc.communicate()
        bare.append(time.monotonic() - started)
        if sandbox.available:
            started = time.monotonic()
            await run_one(check, worktree, environ=os.environ, deadline=time.monotonic() + 30, max_output_bytes=1 << 20,
                          sandbox=sandbox, scratch_dir=scratch, supervise=False)
            boxed.append(time.monotonic() - started)
    return statistics.median(bare), statistics.median(boxed) if boxed else float("nan")


async def memory(server: FakeServerProcess, worktree: Path, steps: int) -> tuple[float, float, float]:
    server.script("bench-100k", [reply("head -c 100000 /dev/zero | tr '\\0' x")])
    rss: dict[int, float] = {}

    def on_step(step: AgentStep) -> None:
        if step.step in (1, steps // 2, steps):
            rss[step.step] = rss_mb()

    await session(server, worktree, "bench-100k", steps, on_step)
    return rss[1], rss[steps // 2], rss[steps]


def relay_overhead(server: FakeServerProcess, calls: int) -> tuple[float, float]:
    """Medians of a streamed call straight to the server and through the relay, interleaved."""
    import httpx

    server.script("bench-relay", ["x" * 1024])
    spec = ModelSpec(provider="openai-compatible", model="bench-relay", base_url=server.base_url, api_key_env="BENCH_KEY")
    body = {"model": "bench-relay", "stream": True, "messages": [{"role": "user", "content": "fix the bug in add(). " * 100}]}
    direct, relayed = [], []
    with ModelRelay(server.base_url, KEY, spec) as relay, httpx.Client(timeout=30) as client:
        for _ in range(calls):
            for base, key, out in ((server.base_url, KEY, direct), (relay.base_url, relay.token, relayed)):
                started = time.perf_counter()
                with client.stream("POST", base + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
                    for _chunk in r.iter_bytes():
                        pass
                    assert r.status_code == 200
                out.append(time.perf_counter() - started)
        assert len(relay.model_calls) == calls and not relay.estimated
    return statistics.median(direct), statistics.median(relayed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="steps of the per-step overhead session")
    parser.add_argument("--long-steps", type=int, default=200, help="steps of the memory session (100 KB per output)")
    parser.add_argument("--relay-calls", type=int, default=200, help="calls each way for the relay's overhead")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    os.environ["ROUTE_AGENT_STATE_DIR"] = str(base / "state")
    demo = base / "demo-repo"
    subprocess.run(["bash", str(ROOT / "examples" / "make-demo-repo.sh"), str(demo)], check=True, capture_output=True)
    repo = open_repo(demo)
    worktree = create_worktree(repo, "bench-agent")
    server = FakeServerProcess()
    sandbox = probe_sandbox()
    try:
        figures = asyncio.run(per_step_overhead(server, worktree.path, args.steps))
        plain, boxed = asyncio.run(sandbox_startup(worktree.path, 30))
        first, middle, last = asyncio.run(memory(server, worktree.path, args.long_steps))
        direct, relayed = relay_overhead(server, args.relay_calls)
    finally:
        server.close()
        remove_worktree(repo, worktree)
    where = "sandboxed: bubblewrap" if sandbox.available else "NOT sandboxed: " + sandbox.reason
    print(f"built-in agent loop on the example repository ({where})")
    print(f"per step, medians over {args.steps} steps of `true`:")
    print(f"  model call (HTTP, loopback server)   {figures['model'] * 1000:8.2f} ms")
    print(f"  command (process + sandbox)          {figures['command'] * 1000:8.2f} ms")
    print(f"  our overhead                         {figures['overhead'] * 1000:8.2f} ms   (target <= 5 ms)")
    print(f"  first step (session start included)  {figures['first'] * 1000:8.2f} ms")
    print("sandbox start-up per command, medians of 30 `true` runs:")
    print(f"  a bare process                       {plain * 1000:8.2f} ms")
    print(f"  as an agent step (bubblewrap)        {boxed * 1000:8.2f} ms   (the sandbox adds {(boxed - plain) * 1000:.2f} ms)")
    print(f"memory over a {args.long_steps}-step session, each command printing 100 KB (RSS of this process):")
    print(f"  after step 1                         {first:8.1f} MB")
    print(f"  after step {args.long_steps // 2:<4}                      {middle:8.1f} MB")
    print(f"  after step {args.long_steps:<4}                      {last:8.1f} MB   (ratio {last / first:.3f})")
    print(f"an external agent's model call, streamed, medians of {args.relay_calls} each:")
    print(f"  straight to the server               {direct * 1000:8.2f} ms")
    print(f"  through the relay                    {relayed * 1000:8.2f} ms   (the relay adds {(relayed - direct) * 1000:.2f} ms, "
          f"{relayed / direct:.2f}x)")


if __name__ == "__main__":
    main()
