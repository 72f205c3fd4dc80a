"""Strategy numbers re-computed straight from the CSV with plain Python, against `route-agent eval --json`.

The lanes come from the evaluator's per-task output (they are the product's classifier's decisions);
everything else (outcomes, costs, expected cascade values, APGR by brute-force tie averaging) is
computed here without the evaluator's code.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from route_agent.cli.main import cli

DATA = Path(__file__).resolve().parents[2] / "data" / "swebench-verified"


def run_eval(args: list[str]) -> dict:
    result = CliRunner().invoke(cli, ["eval", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def plain_strategies(out: dict, csv_path: Path, fast: str, strong: str, prices: tuple[float, float] | None, r: float, fpr: float) -> dict:
    rows: dict[tuple[str, str], tuple[int, float | None]] = {}
    with csv_path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows[(row["instance_id"], row["model"])] = (int(row["resolved"]), float(row["cost_usd"]) if row["cost_usd"] else None)
    totals = {k: [0.0, 0.0] for k in ("all-fast", "all-strong", "oracle", "router", "cascade")}
    for task in out["per_task"]:
        f, cf = rows[(task["instance_id"], fast)]
        s, cs = rows[(task["instance_id"], strong)]
        if prices is not None:
            cf, cs = prices
        assert cf is not None and cs is not None
        totals["all-fast"][0] += f
        totals["all-fast"][1] += cf
        totals["all-strong"][0] += s
        totals["all-strong"][1] += cs
        totals["oracle"][0] += max(f, s)
        totals["oracle"][1] += cs if (not f and s) else cf
        if task["lane"] == "strong":
            totals["router"][0] += s
            totals["router"][1] += cs
            totals["cascade"][0] += s
            totals["cascade"][1] += cs
        else:
            totals["router"][0] += f
            totals["router"][1] += cf
            if f:
                totals["cascade"][0] += (1 - fpr) + fpr * s
                totals["cascade"][1] += cf + fpr * cs
            else:
                totals["cascade"][0] += r * s
                totals["cascade"][1] += cf + r * cs
    return totals


def check(out: dict, totals: dict) -> None:
    n = out["tasks"]
    for name, (resolved, cost) in totals.items():
        got = out["strategies"][name]
        assert got["resolve_rate"] == pytest.approx(resolved / n, abs=1e-6), name
        assert got["total_cost"] == pytest.approx(cost, rel=1e-6, abs=1e-6), name


def brute_apgr(out: dict) -> float:
    """APGR from the per-task outcomes: average PGR over many random tie-breaks, Riemann sum per task."""
    tasks = out["per_task"]
    key = [t["risk_score"] + (10**6 if t["always_strong"] else 0) for t in tasks]
    gap = [t["strong_resolved"] - t["fast_resolved"] for t in tasks]
    total = sum(gap)
    rng = random.Random(0)
    n = len(tasks)
    areas = []
    for _ in range(200):
        tiebreak = [rng.random() for _ in range(n)]
        order = sorted(range(n), key=lambda i: (-key[i], tiebreak[i]))
        cum = list(itertools.accumulate(gap[i] for i in order))
        pgr = [0.0] + [c / total for c in cum]
        areas.append(sum((pgr[k] + pgr[k + 1]) / 2 for k in range(n)) / n)
    return sum(areas) / len(areas)


def test_shipped_data_independent() -> None:
    csv_path = DATA / "outcomes-claude-3-5.csv"
    out = run_eval(["--tasks", str(DATA / "tasks.jsonl"), "--outcomes", str(csv_path), "--fast", "claude-3-5-haiku",
                    "--strong", "claude-3-5-sonnet", "--price", "fast=0.8,strong=3", "--bootstrap", "20"])
    check(out, plain_strategies(out, csv_path, "claude-3-5-haiku", "claude-3-5-sonnet", (0.8, 3.0), 0.8, 0.1))
    assert out["strategies"]["all-fast"]["resolve_rate"] == pytest.approx(203 / 500)
    assert out["strategies"]["all-strong"]["resolve_rate"] == pytest.approx(245 / 500)
    assert out["routing_metrics"]["apgr"] == pytest.approx(brute_apgr(out), abs=0.01)


def test_real_costs_other_models_independent(tmp_path: Path) -> None:
    rng = random.Random(5)
    tasks, lines = [], ["instance_id,model,resolved,cost_usd"]
    for i in range(80):
        repo = ["a/x", "b/y", "c/z"][i % 3]
        files = " ".join(f"x/m{j}.py" for j in range(i % 5))
        extra = "add a new function" if i % 4 == 0 else ""
        tasks.append({"instance_id": f"t{i}", "repo": repo, "problem_statement": f"Fix {files}. {extra}"})
        f = int(rng.random() < 0.3)
        s = int(f or rng.random() < 0.4)
        lines.append(f"t{i},small-model,{f},{rng.uniform(0.01, 0.1):.4f}")
        lines.append(f"t{i},big-model,{s},{rng.uniform(0.2, 1.5):.4f}")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (tmp_path / "o.csv").write_text("\n".join(lines) + "\n")
    out = run_eval(["--tasks", str(tmp_path / "t.jsonl"), "--outcomes", str(tmp_path / "o.csv"), "--fast", "small-model",
                    "--strong", "big-model", "--verifier-recall", "0.7", "--verifier-fpr", "0.2", "--bootstrap", "30"])
    assert out["cost"]["source"] == "outcomes"
    check(out, plain_strategies(out, tmp_path / "o.csv", "small-model", "big-model", None, 0.7, 0.2))
    assert out["routing_metrics"]["apgr"] == pytest.approx(brute_apgr(out), abs=0.02)
