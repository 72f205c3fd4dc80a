"""`route-agent policy learn` end to end: held-out figures, the written policy and predictor, routing
with them, the ledger's minimum, and predicted against observed in `ledger report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from route_agent.cli.main import cli
from route_agent.ledger import AttemptRow, open_ledger
from support.repos import make_sync_repo

TRACE = "\n```\nTraceback (most recent call last):\n  File \"pkg/m.py\", line 3\nKeyError: 'x'\n```\n"


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def separable(tmp_path: Path) -> list[str]:
    """Four repositories; a brief with a traceback is a task the fast model fails and the strong one solves."""
    tasks, lines = [], ["instance_id,model,resolved,cost_usd"]
    for i in range(120):
        hard = i % 3 == 0
        brief = f"Problem {i} in pkg/m{i % 7}.py" + (TRACE if hard else "\nthe docs say one thing, please fix the message")
        tasks.append({"instance_id": f"t{i}", "repo": f"org/r{i % 4}", "problem_statement": brief})
        lines += [f"t{i},small,{0 if hard else 1},", f"t{i},big,{1 if hard else int(i % 5 != 1)},"]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (tmp_path / "outcomes.csv").write_text("\n".join(lines) + "\n")
    return ["--tasks", str(tmp_path / "tasks.jsonl"), "--outcomes", str(tmp_path / "outcomes.csv"),
            "--fast", "small", "--strong", "big", "--price", "fast=1,strong=4"]


def test_learn_says_when_it_cannot_write_the_policy(separable: list[str], tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "learned.yaml"
    code, text, err = invoke(["policy", "learn", *separable, "--bootstrap", "0", "--out", str(out)])
    assert code == 2 and text == ""
    assert err.strip() == f"route-agent: {out}: cannot write: Not a directory"


def test_learn_reports_held_out_figures_and_writes_a_policy_the_router_uses(separable: list[str], tmp_path: Path) -> None:
    out = tmp_path / "learned.yaml"
    code, text, err = invoke(["policy", "learn", *separable, "--bootstrap", "200", "--out", str(out), "--holdout-repos", "org/r3",
                              "--plot", str(tmp_path / "f.png")])
    assert code == 0, err
    assert "leave-one-repository-out" in text and "held out: org/r3" in text and "predictor APGR" in text
    assert (tmp_path / "learned.predictor.json").is_file() and (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    code, js, err = invoke(["policy", "learn", *separable, "--bootstrap", "200", "--json", "--holdout-repos", "org/r3"])
    data = json.loads(js)
    cv = data["cross_validation"]
    assert cv["tasks"] == 120 and data["holdout"]["tasks"] == 30 and data["tuning_tasks"] == 90
    assert cv["apgr_ci95"][0] > 0.5 and cv["auc"]["fast"] > 0.9
    learned, cascade = cv["plans"]["learned"], cv["plans"]["cascade"]
    assert learned["resolve_vs_all_strong"] >= 1.0 and learned["cost_vs_all_strong"] < cascade["cost_vs_all_strong"]
    assert set(cv["plans"]) == {"cascade", "strong-only", "fast-only", "all-fast (no verification)", "learned", "oracle plans (bound)"}
    assert data["fixed_plan"] is None and cv["plan_mix"]["strong-only"] > 0.2
    # The written policy validates, shows its coefficients, and routes with predictions in --json.
    code, text, err = invoke(["policy", "check", str(out)])
    assert code == 0, err
    code, text, err = invoke(["policy", "explain", "--policy", str(out)])
    assert code == 0 and "predictor" in text and "has_traceback" in text, err
    repo = make_sync_repo(tmp_path / "repo")
    code, js, err = invoke(["route", "--task", "Problem in pkg/m1.py" + TRACE, "--workspace", str(repo), "--policy", str(out),
                            "--dry-run", "--json", "--ledger", str(tmp_path / "none.sqlite3")])
    assert code == 0, err
    routed = json.loads(js)
    assert routed["plan"] == "strong-only" and routed["lane"] == "strong"
    assert routed["plan_detail"]["predicted"]["fast"] < 0.5 < routed["plan_detail"]["predicted"]["strong_after_fast_failed"]
    code, text, err = invoke(["route", "--task", "Problem in pkg/m1.py, the docs say one thing, please fix the message",
                              "--workspace", str(repo), "--policy", str(out), "--dry-run", "--ledger", str(tmp_path / "none.sqlite3")])
    assert code == 0 and "plan: " in text and "predicted: P(fast passes)" in text, err
    # eval --policy evaluates the learned policy like any other.
    code, js, err = invoke(["eval", *separable, "--policy", str(out), "--bootstrap", "0", "--json"])
    assert code == 0, err
    assert json.loads(js)["strategies"]["learned-plans"]["resolve_rate"] > 0


def test_learn_from_a_ledger_needs_200_tasks(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = open_ledger(str(path))
    for i in range(30):
        for lane, ok in (("fast", i % 2), ("strong", 1)):
            ledger.record(AttemptRow(run_id=f"r{i}", repo=f"/src/r{i % 2}", lane=lane, model=lane, risk_score=1, passed=bool(ok),
                                     attempt_no=1 if lane == "fast" else 2, brief="fix it", cost_usd=0.1 if lane == "fast" else 0.4))
    ledger.close()
    code, _, err = invoke(["policy", "learn", "--ledger", str(path)])
    assert code == 2 and "30 task(s) have outcomes in both lanes" in err and "record 170 more" in err


def test_learn_from_a_ledger_with_enough_tasks_writes_a_policy(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = open_ledger(str(path))
    for i in range(210):
        hard = i % 3 == 0
        brief = f"Problem {i} in pkg/m{i % 5}.py" + (TRACE if hard else " the docs say one thing, please fix the message")
        for lane, ok in (("fast", not hard), ("strong", hard or i % 5 != 1)):
            ledger.record(AttemptRow(run_id=f"r{i}", repo=f"/src/repo{i % 3}", lane=lane, model=lane, risk_score=1, passed=ok,
                                     attempt_no=1 if lane == "fast" else 2, brief=brief, cost_usd=0.1 if lane == "fast" else 0.4))
    ledger.close()
    out = tmp_path / "from-ledger.yaml"
    code, js, err = invoke(["policy", "learn", "--ledger", str(path), "--bootstrap", "100", "--json", "--out", str(out)])
    assert code == 0, err
    data = json.loads(js)
    assert data["tasks"] == 210 and data["repos"] == 3 and data["fast_cost_vs_strong"] == pytest.approx(0.25)
    assert data["cross_validation"]["plans"]["learned"]["cost_vs_all_strong"] < 1.0
    code, _, err = invoke(["policy", "check", str(out)])
    assert code == 0, err


def test_ledger_report_shows_plans_and_predicted_against_observed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = open_ledger(str(path))
    for i in range(10):
        fast_ok = i < 3
        ledger.record(AttemptRow(run_id=f"r{i}", repo="/src/a", lane="fast", model="f", risk_score=1, passed=fast_ok, plan="cascade",
                                 predicted={"fast": 0.3, "strong": 0.6, "strong_after_fast_failed": 0.5}))
        if not fast_ok:
            ledger.record(AttemptRow(run_id=f"r{i}", repo="/src/a", lane="strong", model="s", risk_score=1, passed=i % 2 == 0,
                                     attempt_no=2, plan="cascade", predicted={"fast": 0.3, "strong": 0.6, "strong_after_fast_failed": 0.5}))
    ledger.close()
    code, js, err = invoke(["ledger", "report", "--ledger", str(path), "--json"])
    assert code == 0, err
    data = json.loads(js)
    assert data["plans"] == {"cascade": 10}
    fast, strong = data["calibration"]
    assert (fast["lane"], fast["attempts"], fast["predicted"], fast["observed"]) == ("fast", 10, 0.3, 0.3)
    assert (strong["lane"], strong["attempts"], strong["predicted"], strong["observed"]) == ("strong", 7, 0.5, round(3 / 7, 4))
    code, text, _ = invoke(["ledger", "report", "--ledger", str(path)])
    assert "plans (tasks): cascade 10" in text and "predicted vs observed, fast lane: 30% predicted, 30% passed over 10 attempt(s)" in text


def test_policy_diff_lists_the_tasks_that_change_plan(separable: list[str], tmp_path: Path) -> None:
    out = tmp_path / "learned.yaml"
    code, _, err = invoke(["policy", "learn", *separable, "--bootstrap", "0", "--out", str(out), "--holdout-repos", "none"])
    assert code == 0, err
    default = tmp_path / "default.yaml"
    default.write_text("version: 1\n")
    code, js, err = invoke(["policy", "diff", str(default), str(out), *separable, "--json"])
    assert code == 0, err
    data = json.loads(js)
    moved = data["changed_plan"]
    assert moved and all(c["old"] == "cascade" and c["predicted"] is not None for c in moved)
    # The learned plans move the traceback tasks (fast fails, strong solves) to strong only.
    assert {c["instance_id"] for c in moved if c["new"] == "strong-only"} <= {f"t{i}" for i in range(0, 120, 3)}
    assert sum(data["plan_moves"].values()) == len(moved)
    code, text, _ = invoke(["policy", "diff", str(default), str(out), *separable])
    assert f"plan changes: {len(moved)}" in text
