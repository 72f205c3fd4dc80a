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


def priced(fast_cost: float) -> Dataset:
    ds = dataset()
    n = len(ds.tasks)
    return Dataset(ds.tasks, "f", "s", ds.fast_resolved, ds.strong_resolved, [fast_cost] * n, [4.0] * n, "price")


@pytest.mark.parametrize("target", [Target("quality", 1.0), Target("quality", 0.9)], ids=str)
def test_an_expensive_fast_lane_is_never_recommended_when_all_strong_dominates(target: Target, tmp_path: Path) -> None:
    ds = priced(3.6)  # a fast attempt costs 90% of a strong one: every cascade costs more than all-strong
    policy = PolicyCache().load().policy
    signals = [d.signals for d in classify_tasks(ds.tasks, policy, "pre-task")]
    result = calibrate(ds, policy, signals, target, "cascade", 0.8, 0.1, [])
    assert result["recommended"]["plan"] == "strong-only" and not result["fast_lane_pays"]
    assert result["verdict"].startswith("send everything to the strong lane; the fast lane costs 90% of the strong lane here")
    assert result["dominated_candidates"] > 0
    out = tmp_path / "p.yaml"
    out.write_text(policy_layer(result, None, ["test"]))
    written = PolicyCache().load(out).policy
    assert written.routing.plan == "strong-only"


def test_a_cheap_fast_lane_pays_and_no_dominated_choice_is_recommended() -> None:
    from route_agent.eval.calibrate import dominated_by_all_strong

    ds = priced(0.5)
    policy = PolicyCache().load().policy
    signals = [d.signals for d in classify_tasks(ds.tasks, policy, "pre-task")]
    result = calibrate(ds, policy, signals, Target("quality", 1.0), "cascade", 0.8, 0.1, [])
    assert result["fast_lane_pays"] and result["recommended"]["plan"] == "auto"
    assert result["verdict"].startswith("the fast lane pays here: it costs 12% of the strong lane")
    assert not dominated_by_all_strong(result["tuning"]["recommended"])


def test_a_strong_share_target_on_an_expensive_fast_lane_gets_a_choice_all_strong_does_not_dominate() -> None:
    from route_agent.eval.calibrate import dominated_by_all_strong

    ds = priced(3.6)
    policy = PolicyCache().load().policy
    signals = [d.signals for d in classify_tasks(ds.tasks, policy, "pre-task")]
    result = calibrate(ds, policy, signals, Target("strong-share", 0.2), "cascade", 0.8, 0.1, [])
    assert result["dominated_candidates"] > 0
    assert result["recommended"]["plan"] == "fast-only"  # cheaper than all-strong, at a lower resolve rate: a real trade-off
    assert not dominated_by_all_strong(result["tuning"]["recommended"])
