"""Time `route-agent eval` on 500 tasks with 1,000 bootstrap resamples (budget: under 10 s).

Uses the shipped SWE-bench Verified pair when present, else a synthetic 500-task pair. Runs the real
console entry point in a fresh interpreter, so start-up and imports are included.

    .venv/bin/python benchmarks/bench_eval.py
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "swebench-verified"
BUDGET_S = 10.0


def synthetic(dir_: Path) -> list[str]:
    rng = random.Random(0)
    tasks, lines = [], ["instance_id,model,resolved,cost_usd"]
    for i in range(500):
        files = " ".join(f"pkg/sub/m{j}.py" for j in range(rng.randint(0, 6)))
        tasks.append({"instance_id": f"t{i}", "repo": f"org/r{i % 12}", "problem_statement": f"Fix {files}\n" + "text " * 200})
        f = int(rng.random() < 0.4)
        lines += [f"t{i},fast,{f},", f"t{i},strong,{int(f or rng.random() < 0.3)},"]
    (dir_ / "t.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (dir_ / "o.csv").write_text("\n".join(lines) + "\n")
    return ["--tasks", str(dir_ / "t.jsonl"), "--outcomes", str(dir_ / "o.csv"), "--fast", "fast", "--strong", "strong"]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        if (DATA / "tasks.jsonl").exists():
            args = ["--tasks", str(DATA / "tasks.jsonl"), "--outcomes", str(DATA / "outcomes-claude-3-5.csv"),
                    "--fast", "claude-3-5-haiku", "--strong", "claude-3-5-sonnet"]
            label = "shipped SWE-bench Verified (500 tasks)"
        else:
            args = synthetic(Path(tmp))
            label = "synthetic (500 tasks)"
        cmd = [sys.executable, "-m", "route_agent", "eval", *args, "--price", "fast=0.8,strong=3", "--bootstrap", "1000", "--json"]
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            timings.append(time.perf_counter() - started)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
        resamples = json.loads(proc.stdout)["bootstrap"]["resamples"]
    best, worst = min(timings), max(timings)
    verdict = "ok" if worst < BUDGET_S else "OVER BUDGET"
    print(f"eval, {label}, {resamples} bootstrap resamples: best {best:.2f} s, worst {worst:.2f} s of 3 runs "
          f"(budget {BUDGET_S:.0f} s): {verdict}")
    return 0 if worst < BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
