"""Calibration: the split, the search, and the policy it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from route_agent.eval.calibrate import Target, calibrate, parse_target, policy_layer, split_repos, with_changes
from route_agent.eval.classify import classify_tasks
from route_agent.eval.data import Dataset, EvalInputError, Task
from route_agent.policy import PolicyCache


def dataset() -> Dataset:
    tasks, fast, strong = [], [], []
    for i in range(40):
        repo = "big/one" if i < 22 else "small/two"
        many = i % 2 == 0  # statements naming many files: only the strong model resolves them
        files = " ".join(f"pkg/m{j}.py" for j in range(6 if many else 1))
        tasks.append(Task(f"t{i}", repo, f"Problem in {files}", None, i + 1))
        fast.append(0 if many else 1)
        strong.append(1)
    n = len(tasks)
    return Dataset(tasks, "f", "s", fast, strong, [1.0] * n, [4.0] * n, "price")


def test_default_holdout_is_the_largest_repo() -> None:
    tune, hold, held = split_repos(dataset(), None)
    assert held == ["big/one"] and len(hold) == 22 and len(tune) == 18
    assert split_repos(dataset(), [])[1] == []
    with pytest.raises(EvalInputError, match="no tasks from x/y"):
        split_repos(dataset(), ["x/y"])


def test_parse_target() -> None:
    assert parse_target("quality=0.95") == Target("quality", 0.95)
    assert parse_target("strong-share=0.3") == Target("strong-share", 0.3)
    for bad in ("quality", "strong-share=2", "speed=1", "quality=x"):
        with pytest.raises(EvalInputError):
            parse_target(bad)


def test_search_finds_the_separating_threshold_and_reports_holdout() -> None:
    ds = dataset()
    policy = PolicyCache().load().policy
    signals = [d.signals for d in classify_tasks(ds.tasks, policy, "pre-task")]
    result = calibrate(ds, policy, signals, Target("quality", 1.0), "router", 0.8, 0.1, None)
    assert result["feasible_on_tuning"]
    hold = result["holdout"]["recommended"]
    assert hold["resolve_vs_all_strong"] == pytest.approx(1.0)  # many-file tasks strong, the rest fast
    assert hold["initial_strong_share"] == pytest.approx(0.5, abs=0.05)
    assert hold["total_cost"] < result["holdout"]["current"]["total_cost"] or result["holdout"]["current"]["resolve_rate"] < 1


def test_policy_layer_is_valid(tmp_path: Path) -> None:
    ds = dataset()
    policy = PolicyCache().load().policy
    signals = [d.signals for d in classify_tasks(ds.tasks, policy, "pre-task")]
    result = calibrate(ds, policy, signals, Target("strong-share", 0.2), "cascade", 0.8, 0.1, [])
    assert result["in_sample"]
    text = policy_layer(result, None, ["test header"])
    path = tmp_path / "p.yaml"
    path.write_text(text)
    loaded = PolicyCache().load(path).policy
    assert loaded.routing.fast_max_score == result["recommended"]["fast_max_score"]
    assert loaded == with_changes(policy, result["recommended"])
