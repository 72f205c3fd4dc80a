"""A routed run on a 34k-file repository: our overhead cold and warm, against `git status` (issue 17).

The repository is the LSP benchmark's (bench_lsp.stdlib_repo: copies of this Python's standard
library, 34,000+ tracked files, built once under benchmarks/.cache). 20 tracked files are modified and
one untracked file is added for the duration. Each run goes through the real pipeline in-process
(open the repository, change set, classify, run_task): the loopback test model server answers at once
with a one-file diff, the only check is `true` (sandboxed when bubblewrap is available), no verifier.
Overhead = the run's wall time minus the lane's latency and the checks' own time.

- cold: the first run with an empty state directory (the worktree is checked out once)
- warm: later runs (the leased worktree is reset)
- escalated: the fast lane's check fails (`false`), the strong lane's passes: two attempts, one worktree
- `git status` is timed between the runs, in the same process, so both see the same machine load
- the small example repository: bench_pipeline's routed run (pytest check, verifier), its overhead
- disk: what the state directory holds afterwards

Goals: warm <= 5x `git status` and <= 1 s; escalated <= 2x warm; small example <= 111 ms.

    .venv/bin/python benchmarks/bench_pool.py [--runs 5] [--small-runs 5]

Measured 2 December 2026, the machine's 2 cores shared with a CI run and other jobs (load 1.4-2.7),
the repository packed (see `packed`), three runs of this script each (medians of 5 inside a run):

    code                       git status   warm overhead               escalated   small example
    before (0ad32bb)           135 ms       822-928 ms = 6.1-6.9x       1.57-1.82x  166-188 ms
    split index, fewer restores, reset while the prompt is built and the model answers,
    context from one ls-files  105-135 ms   554-701 ms = 5.2-5.3x       1.63-1.89x  119-147 ms
    + reset from the run's start 119-144 ms 680-797 ms = 4.7-6.7x       1.51-1.91x  101-134 ms

Warm is under 1 s in every run; the 5x ratio was met in one run of six (4.7x, best) and missed by up
to 1.7x. Before this script packed the repository, the old code measured 1,754 ms = 6.0x (git status
290 ms, heavier load): with loose objects `git write-tree` stats every entry of each changed
directory (8,800).

Measured again later that day on a quiet machine (load under 1.2), three runs each:

    code                       git status   warm overhead               escalated   small example
    cbd47c8 (the above)        169 ms       768 ms = 4.5x               1.71x       180 ms
    the first reset copies what the change set's status listed (no second walk of the user's
    tree), the snapshot's paths recorded (no diff-tree), `git apply --index`, one TLS context
    per process, the stored run staged while the checks run, one ls-files per run
                               163-172 ms   581-604 ms = 3.4-3.7x       1.77-1.97x   81-107 ms

The escalated ratio rose because the warm run fell by a quarter while the second attempt still
walks the user's tree again (the user may have edited it during the first), beside the worktree's
own status: two full scans, which on these two cores take as long side by side as one after the
other (160 ms alone, 250-320 ms each together). Two runs of unfinished code gave 2.11x and 2.30x:
the 2x margin is thin. With a real model the second reset runs while the model answers.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_lsp import stdlib_repo  # noqa: E402

from fakeserver.server import FakeLLMServer  # noqa: E402
from route_agent.pipeline import events as ev  # noqa: E402
from route_agent.pipeline.run import RunRequest, run_task  # noqa: E402
from route_agent.policy import PolicyCache  # noqa: E402
from route_agent.routing import Router  # noqa: E402
from route_agent.workspace.git import collect_changes, git_env, open_repo  # noqa: E402
from route_agent.workspace.usage import disk_bytes, human  # noqa: E402

MODIFIED = 20
TASK = "fix the version string in the colorsys module"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True, env=git_env()).stdout


def packed(root: Path) -> None:
    """Pack the repository's objects once. A repository this size arrives by clone, packed; the one
    bench_lsp builds is a single commit of loose objects, so every object lookup is a file-system
    stat (git write-tree looks up each entry of every directory an attempt changes: 8,800 stats here)."""
    counts = dict(line.split(": ", 1) for line in git(root, "count-objects", "-v").splitlines() if ": " in line)
    if counts.get("packs", "0") == "0":
        git(root, "repack", "-adq")


def time_git_status(root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["git", "status", "--porcelain"], cwd=root, check=True, capture_output=True, env=git_env())
    return time.perf_counter() - started


def dirty(root: Path) -> tuple[list[str], Path]:
    tracked = [p for p in git(root, "ls-files", "-z", "--", "*.py").split("\0") if p]
    chosen = tracked[:: max(1, len(tracked) // MODIFIED)][:MODIFIED]
    for rel in chosen:
        with (root / rel).open("a", encoding="utf-8") as handle:
            handle.write("\n\ndef bench_added_function():\n    return 42\n")
    untracked = root / "bench_pool_untracked.txt"
    untracked.write_text("an untracked file\n")
    return chosen, untracked


def target_file(root: Path) -> str:
    found = sorted(p for p in git(root, "ls-files", "-z", "--", "*/colorsys.py").split("\0") if p)
    if not found:
        raise SystemExit(f"{root} has no colorsys.py; delete benchmarks/.cache and run again")
    return found[0]


def fix_reply(root: Path, rel: str) -> str:
    original = (root / rel).read_text()
    fixed = original.replace('"""', '"""Colour conversions (benchmark edit).\n', 1)
    diff = "".join(difflib.unified_diff(original.splitlines(True), fixed.splitlines(True), f"a/{rel}", f"b/{rel}"))
    return "Here is the fix.\n\n```diff\n" + diff + "```\n"


def policy_file(base: Path, url: str, fast_check: str) -> Path:
    spec = f'provider: openai-compatible, base_url: "{url}", api_key_env: BENCH_KEY, executor: oneshot'
    path = base / f"policy-{fast_check}.yaml"
    path.write_text(f"""
models:
  fast: {{{spec}, model: fixer}}
  strong: {{{spec}, model: fixer}}
routing:
  fast_max_score: 100
  strong_min_score: 101
verifier:
  lanes: []
verification:
  fast: [{{name: noop, run: [{fast_check}], timeout_s: 60}}]
  strong: [{{name: noop, run: ["true"], timeout_s: 60}}]
""")
    return path


async def one_run(root: Path, policy: Path) -> dict[str, float]:
    started = time.perf_counter()
    repo = open_repo(root)
    loaded = PolicyCache().load(policy)
    router = Router(loaded.policy)
    change_set, listing = collect_changes(repo)  # as prepare_run does
    decision = router.classify(change_set, TASK)
    req = RunRequest(repo=repo, policy=loaded.policy, router=router, decision=decision, brief=TASK, change_set=change_set,
                     listing=listing, environ=dict(os.environ, BENCH_KEY="k"))
    model = checks = 0.0
    cold: float | None = None
    result = message = ""
    attempts = 0
    async for event in run_task(req):
        if isinstance(event, ev.LaneReplied):
            model += event.latency_seconds
            attempts += 1
        elif isinstance(event, ev.CheckFinished):
            checks += event.duration_s
        elif isinstance(event, ev.WorktreePrepared):
            cold = event.seconds
        elif isinstance(event, ev.RunFinished):
            result, message = event.result, event.message
    total = time.perf_counter() - started
    if result != "pass":
        raise SystemExit(f"the benchmark's run ended {result!r}, not pass: {message}")
    return {"total": total, "model": model, "checks": checks, "overhead": total - model - checks,
            "cold_checkout": cold if cold is not None else 0.0, "attempts": attempts}


def small_repo_overhead(runs: int) -> float:
    import bench_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = bench_pipeline.make_repo(base)
        server = FakeLLMServer().start()
        try:
            server.script("fixer", reply=bench_pipeline.fix_reply(repo))
            server.script("verifier", reply=bench_pipeline.VERIFIER)
            policy = bench_pipeline.policy_file(base, server.base_url)
            if "executor:" not in policy.read_text():  # the one-shot lane, as when the 111 ms were measured
                policy.write_text(policy.read_text().replace("api_key_env: BENCH_KEY", "api_key_env: BENCH_KEY, executor: oneshot"))
            rows = [asyncio.run(bench_pipeline.one_run(repo, policy, base / "ledger.sqlite3")) for _ in range(runs)]
        finally:
            server.stop()
    return statistics.median(r["overhead"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="warm runs (and escalated runs)")
    parser.add_argument("--small-runs", type=int, default=5)
    args = parser.parse_args()
    root = stdlib_repo()
    packed(root)
    files = git(root, "ls-files", "-z").count("\0")
    checkout_bytes = disk_bytes(root) - disk_bytes(root / ".git")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        state = base / "state"
        os.environ["ROUTE_AGENT_STATE_DIR"] = str(state)
        os.environ["ROUTE_AGENT_CONFIG_DIR"] = str(base / "config")
        chosen, untracked = dirty(root)
        server = FakeLLMServer().start()
        try:
            rel = target_file(root)
            server.script("fixer", reply=fix_reply(root, rel))
            passing = policy_file(base, server.base_url, '"true"')
            escalating = policy_file(base, server.base_url, '"false"')
            status = [time_git_status(root) for _ in range(3)]
            cold = asyncio.run(one_run(root, passing))
            warm, escalated = [], []
            for _ in range(args.runs):
                status.append(time_git_status(root))
                warm.append(asyncio.run(one_run(root, passing)))
                status.append(time_git_status(root))
                escalated.append(asyncio.run(one_run(root, escalating)))
            state_bytes = disk_bytes(state)
            worktree_bytes = disk_bytes(state / "worktrees")
        finally:
            server.stop()
            git(root, "checkout", "-q", "--", *chosen)
            untracked.unlink(missing_ok=True)

    st = statistics.median(status)
    w = statistics.median(r["overhead"] for r in warm)
    e = statistics.median(r["overhead"] for r in escalated)
    attempts = statistics.median(r["attempts"] for r in escalated)
    print(f"routed run on a {files:,}-file repository ({MODIFIED} files modified, 1 untracked); medians of {args.runs}:")
    print(f"  git status --porcelain           {st * 1000:8.0f} ms  (median of {len(status)}, between the runs)")
    print(f"  cold first run: overhead         {cold['overhead'] * 1000:8.0f} ms = {cold['overhead'] / st:5.1f}x git status "
          f"(the one `git worktree add` {cold['cold_checkout'] * 1000:.0f} ms, reported in the transcript; "
          f"the rest {(cold['overhead'] - cold['cold_checkout']) * 1000:.0f} ms)")
    print(f"  warm run: overhead               {w * 1000:8.0f} ms = {w / st:5.1f}x git status   "
          f"goal <= 5x and <= 1000 ms: {'met' if w <= 5 * st and w <= 1.0 else 'NOT met'}")
    print(f"  escalated run ({attempts:.0f} attempts): overhead {e * 1000:6.0f} ms = {e / w:5.2f}x warm        "
          f"goal <= 2x: {'met' if e <= 2 * w else 'NOT met'}")
    print(f"  model + checks in a warm run     {statistics.median(r['model'] + r['checks'] for r in warm) * 1000:8.0f} ms")
    print(f"  state directory on disk          {human(state_bytes):>8}  (worktrees {human(worktree_bytes)}; "
          f"the repository's own files: {human(checkout_bytes)})")
    sys.stdout.flush()
    small = small_repo_overhead(args.small_runs)
    print(f"small example repository (bench_pipeline's run): overhead {small * 1000:.0f} ms   goal <= 111 ms: "
          f"{'met' if small <= 0.111 else 'NOT met'}")


if __name__ == "__main__":
    main()
