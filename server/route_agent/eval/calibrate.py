"""`route-agent policy calibrate`: search thresholds and a few weights on some repositories, report
on the held-out ones, and write the result as a policy layer.

Search space: for every combination of the weight grid (`WEIGHT_GRID`: the file-count weight and cap,
new code, dependency change) every threshold `fast_max_score = t, strong_min_score = t + 1`. Signals are
computed once per task with the product's classifier; each candidate re-decides them with
`Router.decide` (weights and thresholds do not change which signals fire). The always-strong floor
is never searched: it stays.

Selection on the tuning repositories only:
- `quality=Q`: the cheapest candidate whose resolve rate is >= Q x all-strong's; ties: higher resolve
  rate, then fewer changes from the current policy.
- `strong-share=S`: the best resolve rate among candidates whose initial strong share is <= S; ties:
  lower cost, then fewer changes.
The strategy optimised is the cascade (default) or the router alone (`--strategy router`).
Default hold-out: the repository with the most tasks (ties: by name), so the tuning never sees it.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from typing import Any, Literal

import yaml

from route_agent.eval import targets
from route_agent.eval.classify import ALWAYS_STRONG_KEY
from route_agent.eval.data import Dataset, EvalInputError, ValueRule
from route_agent.policy.models import Policy
from route_agent.routing.decide import Router
from route_agent.signals.compute import Signals

Strategy = Literal["cascade", "router"]
WEIGHT_GRID: dict[str, tuple[int, ...]] = {
    "files.per": (0, 1, 2),
    "files.max": (2, 4, 8),
    "new_code": (0, 3, 6),
    "dependency_change": (0, 2, 5),
}


Target = targets.Target[Literal["strong-share", "quality"]]
TARGET_RULES: dict[Literal["strong-share", "quality"], ValueRule] = {
    "strong-share": targets.STRONG_SHARE, "quality": targets.QUALITY,
}


def parse_target(text: str) -> Target:
    return targets.parse_target(text, TARGET_RULES, "strong-share=S or quality=Q (for example quality=1.0)")


def split_repos(dataset: Dataset, holdout: Sequence[str] | None) -> tuple[list[int], list[int], list[str]]:
    """Tuning and held-out task indices. `holdout` None: the largest repository; [] : no hold-out."""
    counts: dict[str, int] = {}
    for task in dataset.tasks:
        counts[task.repo] = counts.get(task.repo, 0) + 1
    if holdout is None:
        if len(counts) < 2:
            raise EvalInputError("calibration holds out a repository, but the tasks come from one; "
                                 "pass --holdout-repos none to tune and report in-sample")
        holdout = [sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]]
    unknown = [r for r in holdout if r not in counts]
    if unknown:
        raise EvalInputError(f"--holdout-repos: no tasks from {', '.join(unknown)}; repositories in the tasks: {', '.join(sorted(counts))}")
    held = set(holdout)
    tune = [i for i, t in enumerate(dataset.tasks) if t.repo not in held]
    hold = [i for i, t in enumerate(dataset.tasks) if t.repo in held]
    if holdout and not tune:
        raise EvalInputError("--holdout-repos holds out every repository; leave some to tune on")
    return tune, hold, list(holdout)


def with_changes(policy: Policy, changes: dict[str, Any]) -> Policy:
    weights = policy.weights.model_dump()
    routing = policy.routing.model_dump()
    for key, value in changes.items():
        if key in ("fast_max_score", "strong_min_score", "plan"):
            routing[key] = value
        elif key.startswith("files."):
            weights["files"][key.split(".", 1)[1]] = value
        else:
            weights[key] = value
    data = policy.model_dump()
    data["weights"] = weights
    data["routing"] = routing
    return Policy.model_validate(data)


def current_values(policy: Policy) -> dict[str, Any]:
    w = policy.weights
    return {"files.per": w.files.per, "files.max": w.files.max, "new_code": w.new_code, "dependency_change": w.dependency_change,
            "fast_max_score": policy.routing.fast_max_score, "strong_min_score": policy.routing.strong_min_score,
            "plan": policy.routing.plan}


def _score(x: Any, strategy: Strategy) -> dict[str, float]:
    from route_agent.eval.metrics import per_task_strategies, summarize

    pt = per_task_strategies(x)
    chosen = summarize(pt[strategy])
    strong = summarize(pt["all-strong"])
    fast = summarize(pt["all-fast"])
    return {
        "resolve_rate": chosen["resolve_rate"], "total_cost": chosen["total_cost"], "strong_share": chosen["strong_share"],
        "initial_strong_share": float(x.lane_strong.mean()) if x.n else 0.0,
        "all_strong_resolve_rate": strong["resolve_rate"], "all_strong_cost": strong["total_cost"],
        "all_fast_resolve_rate": fast["resolve_rate"], "all_fast_cost": fast["total_cost"],
        "resolve_vs_all_strong": chosen["resolve_rate"] / strong["resolve_rate"] if strong["resolve_rate"] else float("nan"),
        "cost_vs_all_strong": chosen["total_cost"] / strong["total_cost"] if strong["total_cost"] else float("nan"),
        "tasks": float(x.n),
    }


def _score_plan(x: Any, plan: str) -> dict[str, float]:
    """`strong-only`: every task strong. `fast-only`: tasks routed fast are accepted when verification
    passes them and never escalated (resolved f (1 - F), cost c_f); tasks routed strong stay strong."""
    from route_agent.eval.metrics import PerTask, per_task_strategies, summarize

    pt = per_task_strategies(x)
    strong, fast = summarize(pt["all-strong"]), summarize(pt["all-fast"])
    if plan == "strong-only":
        chosen = strong
        initial = 1.0
    else:
        keep = 1.0 - x.lane_strong
        per = PerTask(x.lane_strong * x.strong + keep * x.fast * (1.0 - x.fpr), x.lane_strong * x.strong_cost + keep * x.fast_cost,
                      x.lane_strong.copy())
        chosen = summarize(per)
        initial = float(x.lane_strong.mean()) if x.n else 0.0
    return {
        "resolve_rate": chosen["resolve_rate"], "total_cost": chosen["total_cost"], "strong_share": chosen["strong_share"],
        "initial_strong_share": initial,
        "all_strong_resolve_rate": strong["resolve_rate"], "all_strong_cost": strong["total_cost"],
        "all_fast_resolve_rate": fast["resolve_rate"], "all_fast_cost": fast["total_cost"],
        "resolve_vs_all_strong": chosen["resolve_rate"] / strong["resolve_rate"] if strong["resolve_rate"] else float("nan"),
        "cost_vs_all_strong": chosen["total_cost"] / strong["total_cost"] if strong["total_cost"] else float("nan"),
        "tasks": float(x.n),
    }


def dominated_by_all_strong(result: dict[str, float]) -> bool:
    """More (or equal) cost than all-strong at no better resolve rate."""
    return bool(result["total_cost"] >= result["all_strong_cost"] - 1e-9
                and result["resolve_rate"] <= result["all_strong_resolve_rate"] + 1e-12)


def _rank(result: dict[str, float], full: dict[str, Any], t: int, current: dict[str, Any], target: Target) -> tuple[float, ...]:
    """A candidate's sort key (lower is better); marks `result` feasible and dominated."""
    distance = sum(1 for k, v in full.items() if current.get(k) != v)
    # A choice all-strong dominates is never recommended: it ranks after every other one.
    dominated = full.get("plan") != "strong-only" and dominated_by_all_strong(result)
    if target.kind == "quality":
        feasible = not dominated and result["resolve_rate"] >= target.value * result["all_strong_resolve_rate"] - 1e-12
        first = result["total_cost"] if feasible else -result["resolve_rate"]
        rank = (0.0 if feasible else 2.0 if dominated else 1.0, first, -result["resolve_rate"], float(distance), -t)
    else:
        feasible = not dominated and result["initial_strong_share"] <= target.value + 1e-12
        first = -result["resolve_rate"] if feasible else result["initial_strong_share"]
        rank = (0.0 if feasible else 2.0 if dominated else 1.0, first, result["total_cost"], float(distance), -t)
    result["feasible"] = float(feasible)
    result["dominated"] = float(dominated)
    return rank


def _verdict(best: dict[str, Any], best_tune: dict[str, float], candidates: Sequence[tuple[Any, dict[str, Any], dict[str, float]]],
             ratio: float) -> str:
    """One sentence: whether the fast lane pays here, and why."""
    using_fast = [c for c in candidates if c[1].get("plan") != "strong-only"]
    all_dominated = bool(using_fast) and all(c[2]["dominated"] for c in using_fast)
    if best.get("plan") == "strong-only":
        why = ("every choice that uses it costs at least as much as all-strong for no better resolve rate" if all_dominated
               else "no choice that uses it reaches the target for less")
        return f"send everything to the strong lane; the fast lane costs {ratio:.0%} of the strong lane here, and {why}"
    return (f"the fast lane pays here: it costs {ratio:.0%} of the strong lane; the recommendation reaches "
            f"{best_tune['resolve_vs_all_strong']:.1%} of all-strong's resolve rate "
            f"at {best_tune['cost_vs_all_strong']:.1%} of its cost")


def calibrate(dataset: Dataset, policy: Policy, signals: Sequence[Signals], target: Target, strategy: Strategy,  # noqa: PLR0915 (the grid search and its report share their locals; rank and verdict are split out)
              recall: float, fpr: float, holdout: Sequence[str] | None) -> dict[str, Any]:
    import numpy as np

    from route_agent.eval.metrics import make_inputs

    tune, hold, held_repos = split_repos(dataset, holdout)
    base = make_inputs(dataset.fast_resolved, dataset.strong_resolved, dataset.fast_cost, dataset.strong_cost,
                       [0.0] * len(signals), [False] * len(signals), recall, fpr)
    tune_idx = np.asarray(tune, dtype=np.int64)
    current = current_values(policy)
    names = list(WEIGHT_GRID)
    candidates: list[tuple[tuple[float, ...], dict[str, Any], dict[str, float]]] = []

    def rank_of(result: dict[str, float], full: dict[str, Any], t: int) -> tuple[float, ...]:
        return _rank(result, full, t, current, target)

    seen_variants: set[tuple[int, ...]] = set()
    for combo in itertools.product(*(WEIGHT_GRID[n] for n in names)):
        changes = dict(zip(names, combo, strict=True))
        if changes["files.per"] == 0:
            changes["files.max"] = current["files.max"]
        ident = tuple(changes.values())
        if ident in seen_variants:
            continue
        seen_variants.add(ident)
        variant = with_changes(policy, changes)
        router = Router(variant)
        scores = np.empty(len(signals))
        always = np.empty(len(signals), dtype=bool)
        for i, sig in enumerate(signals):
            risk, _ = router.score(sig)
            scores[i] = risk
            always[i] = bool(router.always_strong_hits(sig))
        top = int(scores.max()) if len(scores) else 0
        for t in range(0, top + 1):
            lane = always | (scores > t)
            x = base.__class__(base.fast, base.strong, base.fast_cost, base.strong_cost, scores + ALWAYS_STRONG_KEY * always,
                               lane.astype(np.float64), recall, fpr).take(tune_idx)
            full = {**changes, "fast_max_score": t, "strong_min_score": t + 1, "plan": "auto"}
            result = _score(x, strategy)
            candidates.append((rank_of(result, full, t), full, result))
            if (changes == {k: current[k] for k in changes}) and t == current["fast_max_score"]:
                fast_only = {**full, "plan": "fast-only"}
                scored = _score_plan(x, "fast-only")
                candidates.append((rank_of(scored, fast_only, t), fast_only, scored))
    # Every task to the strong lane: a candidate whatever the thresholds (they no longer matter).
    everything_strong = {**current, "plan": "strong-only"}
    x_all = base.__class__(base.fast, base.strong, base.fast_cost, base.strong_cost, base.key, np.ones(base.n), recall, fpr).take(tune_idx)
    scored_strong = _score_plan(x_all, "strong-only")
    candidates.append((rank_of(scored_strong, everything_strong, current["fast_max_score"]), everything_strong, scored_strong))
    candidates.sort(key=lambda c: c[0])
    best_rank, best, best_tune = candidates[0]
    chosen = with_changes(policy, best)

    def report(pol: Policy, index: Sequence[int]) -> dict[str, float] | None:
        if not index:
            return None
        router = Router(pol)
        decisions = [router.decide(s) for s in signals]
        x = make_inputs(dataset.fast_resolved, dataset.strong_resolved, dataset.fast_cost, dataset.strong_cost,
                        [d.risk_score + (ALWAYS_STRONG_KEY if d.always_strong else 0.0) for d in decisions],
                        [d.lane == "strong" for d in decisions], recall, fpr).take(np.asarray(index, dtype=np.int64))
        if pol.routing.plan != "auto":
            return _score_plan(x, pol.routing.plan)
        return _score(x, strategy)

    everything = list(range(len(signals)))
    tune_fast = float(np.mean([dataset.fast_cost[i] for i in tune])) if tune else 0.0
    tune_strong = float(np.mean([dataset.strong_cost[i] for i in tune])) if tune else 0.0
    ratio = tune_fast / tune_strong if tune_strong > 0 else float("nan")
    verdict = _verdict(best, best_tune, candidates, ratio)
    return {
        "verdict": verdict,
        "fast_lane_pays": best.get("plan") != "strong-only",
        "fast_cost_vs_strong": ratio,
        "dominated_candidates": sum(1 for c in candidates if c[2]["dominated"]),
        "target": str(target),
        "strategy": strategy,
        "verifier": {"recall": recall, "false_positive_rate": fpr},
        "holdout_repos": held_repos,
        "tuning_repos": sorted({dataset.tasks[i].repo for i in tune}),
        "tuning_tasks": len(tune),
        "holdout_tasks": len(hold),
        "in_sample": not hold,
        "candidates_searched": len(candidates),
        "weight_grid": {k: list(v) for k, v in WEIGHT_GRID.items()},
        "feasible_on_tuning": bool(best_rank[0] == 0.0),
        "recommended": best,
        "changed": {k: {"from": current[k], "to": v} for k, v in best.items() if current.get(k) != v},
        "current": current,
        "tuning": {"recommended": best_tune, "current": report(policy, tune)},
        "holdout": {"recommended": report(chosen, hold), "current": report(policy, hold)},
        "all": {"recommended": report(chosen, everything), "current": report(policy, everything)},
    }


def policy_layer(result: dict[str, Any], base_layer: dict[str, Any] | None, header: Sequence[str]) -> str:
    """YAML for the recommended policy: the base layer's keys (if any) with the recommendation applied."""
    data: dict[str, Any] = {"version": 1}
    if base_layer:
        data.update(base_layer)
    routing = dict(data.get("routing") or {})
    weights = dict(data.get("weights") or {})
    rec = result["recommended"]
    routing["fast_max_score"] = rec["fast_max_score"]
    routing["strong_min_score"] = rec["strong_min_score"]
    files = dict(weights.get("files") or {})
    files["per"], files["max"] = rec["files.per"], rec["files.max"]
    weights["files"] = files
    weights["new_code"] = rec["new_code"]
    weights["dependency_change"] = rec["dependency_change"]
    if rec.get("plan", "auto") != "auto":
        routing["plan"] = rec["plan"]
    data["routing"], data["weights"] = routing, weights
    body = yaml.safe_dump(data, sort_keys=False, width=100)
    return "".join(f"# {line}\n" if line else "#\n" for line in header) + body


def effective_diff(old: Policy, new: Policy, old_name: str, new_name: str) -> str:
    """A unified diff of the effective routing thresholds and weights (YAML) of two policies."""
    def text(p: Policy) -> list[str]:
        data = {"routing": {k: v for k, v in p.routing.model_dump().items() if k in ("fast_max_score", "strong_min_score", "between")},
                "weights": p.weights.model_dump()}
        return yaml.safe_dump(data, sort_keys=False, width=100).splitlines(keepends=True)

    return "".join(difflib.unified_diff(text(old), text(new), fromfile=old_name, tofile=new_name))
