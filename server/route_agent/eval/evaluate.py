"""`route-agent eval`: every strategy, the router's APGR/CPT with bootstrap intervals, per repository
and per signal, as one JSON-ready dictionary."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from route_agent.eval.classify import SignalMode, classify_tasks, fired_signals, mode_label, ordering_key
from route_agent.eval.data import Dataset
from route_agent.policy.models import Policy
from route_agent.routing.decide import Decision

CASCADE_TARGET_COST = 0.6
"""The default cost target (`--cost-target`): cascade resolve rate >= all-strong's at <= 60% of all-strong's cost."""


@dataclass(frozen=True)
class EvalSettings:
    mode: SignalMode = "pre-task"
    recall: float = 0.8
    fpr: float = 0.1
    resamples: int = 1000
    seed: int = 0
    cost_target: float = CASCADE_TARGET_COST
    """The cascade check's cost limit as a fraction of all-strong's cost (the plot's dashed line)."""


def build_inputs(dataset: Dataset, decisions: Sequence[Decision], settings: EvalSettings) -> Any:
    from route_agent.eval.metrics import make_inputs

    return make_inputs(
        dataset.fast_resolved, dataset.strong_resolved, dataset.fast_cost, dataset.strong_cost,
        [ordering_key(d) for d in decisions], [d.lane == "strong" for d in decisions], settings.recall, settings.fpr,
    )


def _ci(value: tuple[float, float] | None) -> list[float] | None:
    return [value[0], value[1]] if value is not None else None


def strategy_table(inputs: Any, resamples: int, seed: int) -> tuple[dict[str, Any], Any]:
    from route_agent.eval.metrics import STRATEGY_NOTES, STRATEGY_ORDER, bootstrap, per_task_strategies, summarize

    per_task = per_task_strategies(inputs)
    boot = bootstrap(inputs, per_task, resamples, seed)
    table: dict[str, Any] = {}
    for name in STRATEGY_ORDER:
        row: dict[str, Any] = summarize(per_task[name])
        row["description"] = STRATEGY_NOTES[name]
        if boot is not None:
            row["ci95"] = {k: _ci(v) for k, v in boot.strategies[name].items()}
        table[name] = row
    return table, boot


def routing_block(inputs: Any, boot: Any) -> dict[str, Any]:
    from route_agent.eval.metrics import routing_metrics

    rm = routing_metrics(inputs)
    out: dict[str, Any] = {
        "apgr": rm.apgr,
        "cpt50": rm.cpt50,
        "cpt80": rm.cpt80,
        "random_apgr": 0.5,
        "curve": [{"strong_share": s, "pgr": None if math.isnan(p) else p} for s, p in zip(rm.curve_share, rm.curve_pgr, strict=True)],
    }
    if boot is not None:
        out.update({
            "apgr_ci95": _ci(boot.apgr),
            "cpt50_ci95": _ci(boot.cpt50),
            "cpt80_ci95": _ci(boot.cpt80),
            "apgr_minus_random_ci95": _ci(boot.apgr_minus_random),
            "p_apgr_at_most_random": boot.p_apgr_le_random,
            "router_minus_random_resolve_ci95": _ci(boot.router_minus_random),
            "cascade_minus_random_cascade_resolve_ci95": _ci(boot.cascade_minus_random_cascade),
            "bootstrap_resamples": boot.resamples,
            "bootstrap_undefined": boot.undefined,
        })
    return out


def learned_plans_row(inputs: Any, decisions: Sequence[Decision], policy: Policy) -> dict[str, Any]:
    """Every task under its own plan (a learned policy's choice; the floor's tasks strong only)."""
    import numpy as np

    from route_agent.eval.learn import Outcomes, learned_outcome

    learned = policy.routing.learned
    catch = learned.catch_rate if learned is not None else inputs.recall
    alarm = learned.false_alarm_rate if learned is not None else inputs.fpr
    plans = [d.plan_name for d in decisions]
    o = Outcomes(inputs.fast, inputs.strong, inputs.fast_cost, inputs.strong_cost)
    res, cost = learned_outcome(plans, o, catch, alarm)  # type: ignore[arg-type]
    n = max(1, len(plans))
    escalate = inputs.fast * alarm + (1 - inputs.fast) * catch
    strong_calls = np.asarray([1.0 if p == "strong-only" else (escalate[i] if p == "cascade" else 0.0) for i, p in enumerate(plans)])
    return {"resolve_rate": float(res.sum()) / n, "resolved": float(res.sum()), "total_cost": float(cost.sum()),
            "cost_per_task": float(cost.sum()) / n, "strong_share": float(strong_calls.sum()) / n,
            "description": "each task under the plan the learned policy chose (routing.learned)",
            "plan_mix": {name: plans.count(name) for name in sorted(set(plans))}}


def cascade_check(table: dict[str, Any], cost_target: float = CASCADE_TARGET_COST) -> dict[str, Any]:
    strong = table["all-strong"]
    out: dict[str, Any] = {"target": f"resolve rate >= all-strong's at <= {cost_target:.0%} of all-strong's cost",
                           "cost_target": cost_target}
    for name in ("cascade", "cascade-oracle-first"):
        row = table[name]
        ratio_cost = row["total_cost"] / strong["total_cost"] if strong["total_cost"] else None
        ratio_res = row["resolve_rate"] / strong["resolve_rate"] if strong["resolve_rate"] else None
        meets = bool(row["resolve_rate"] >= strong["resolve_rate"] - 1e-9 and ratio_cost is not None
                     and ratio_cost <= cost_target + 1e-9)
        out[name] = {"resolve_vs_all_strong": ratio_res, "cost_vs_all_strong": ratio_cost, "meets": meets}
    out["meets"] = out["cascade"]["meets"]
    return out


def per_repo(dataset: Dataset, inputs: Any, settings: EvalSettings) -> list[dict[str, Any]]:
    from route_agent.eval.metrics import bootstrap, per_task_strategies, routing_metrics, summarize

    by_repo: dict[str, list[int]] = defaultdict(list)
    for position, task in enumerate(dataset.tasks):
        by_repo[task.repo].append(position)
    rows: list[dict[str, Any]] = []
    for repo, index in sorted(by_repo.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        sub = inputs.take(index)
        per_task = per_task_strategies(sub)
        names = ("all-fast", "all-strong", "oracle", "router", "cascade", "random")
        summary = {name: summarize(per_task[name]) for name in names}
        boot = bootstrap(sub, {k: per_task[k] for k in ("router", "random", "cascade")}, settings.resamples, settings.seed)
        rm = routing_metrics(sub)
        rows.append({
            "repo": repo,
            "tasks": len(index),
            "strategies": summary,
            "router_strong_share": summary["router"]["strong_share"],
            "apgr": rm.apgr,
            "apgr_ci95": _ci(boot.apgr) if boot is not None else None,
            "cpt50": rm.cpt50,
            "cpt80": rm.cpt80,
        })
    return rows


def signal_table(dataset: Dataset, decisions: Sequence[Decision], mode: SignalMode) -> list[dict[str, Any]]:
    """Per signal: among the tasks where it fires, how often the strong model alone resolves them
    (strong helps) and how often the fast one does (fast suffices), against the tasks where it does not."""
    fires: dict[str, list[bool]] = {}
    n = len(decisions)
    unit = "files named" if mode == "pre-task" else "files changed"
    for i, d in enumerate(decisions):
        names = set(fired_signals(d))
        if d.always_strong:
            names.add("always_strong")
        names.add("lane=strong" if d.lane == "strong" else "lane=fast")
        files = d.signals.files_touched
        names.add(f"{unit}=0" if files == 0 else f"{unit}=1" if files == 1 else f"{unit}>=2")
        for name in names:
            fires.setdefault(name, [False] * n)[i] = True
    rows: list[dict[str, Any]] = []
    f, s = dataset.fast_resolved, dataset.strong_resolved
    for name, mask in fires.items():
        def counts(sel: list[int]) -> dict[str, Any]:
            total = len(sel)
            strong_only = sum(1 for i in sel if s[i] and not f[i])
            fast_ok = sum(1 for i in sel if f[i])
            fast_only = sum(1 for i in sel if f[i] and not s[i])
            neither = sum(1 for i in sel if not f[i] and not s[i])
            return {
                "tasks": total, "strong_only": strong_only, "fast_only": fast_only, "fast_resolves": fast_ok, "neither": neither,
                "strong_helps_rate": strong_only / total if total else None,
                "fast_suffices_rate": fast_ok / total if total else None,
            }
        on = counts([i for i in range(n) if mask[i]])
        off = counts([i for i in range(n) if not mask[i]])
        lift = None
        if on["strong_helps_rate"] is not None and off["strong_helps_rate"]:
            lift = on["strong_helps_rate"] / off["strong_helps_rate"]
        rows.append({"signal": name, "fires": on, "does_not_fire": off, "strong_helps_lift": lift})
    rows.sort(key=lambda r: (-r["fires"]["tasks"], r["signal"]))
    return rows


def evaluate(dataset: Dataset, policy: Policy, settings: EvalSettings, sources: Sequence[str] = (),
             tasks_file: str = "tasks", decisions: Sequence[Decision] | None = None) -> dict[str, Any]:
    from route_agent.eval.metrics import per_task_strategies, threshold_curve

    if decisions is None:
        decisions = classify_tasks(dataset.tasks, policy, settings.mode, tasks_file)
    inputs = build_inputs(dataset, decisions, settings)
    table, boot = strategy_table(inputs, settings.resamples, settings.seed)
    routing = routing_block(inputs, boot)
    fast_first = per_task_strategies(inputs)["cascade-all-fast-first"]
    router_only = per_task_strategies(inputs)["all-fast"]
    routing["router_curve"] = threshold_curve(inputs, router_only)
    routing["cascade_curve"] = threshold_curve(inputs, fast_first)
    if any(d.plan is not None for d in decisions):
        table["learned-plans"] = learned_plans_row(inputs, decisions, policy)
    repos = sorted({t.repo for t in dataset.tasks})
    result: dict[str, Any] = {
        "signals_mode": settings.mode,
        "signals_label": mode_label(settings.mode),
        "leaky": settings.mode == "gold",
        "tasks": len(dataset.tasks),
        "repos": len(repos),
        "fast_model": dataset.fast_model,
        "strong_model": dataset.strong_model,
        "policy_sources": list(sources),
        "thresholds": {"fast_max_score": policy.routing.fast_max_score, "strong_min_score": policy.routing.strong_min_score,
                       "between": policy.routing.between},
        "cost": {"source": dataset.cost_source,
                 "price": {"fast": dataset.prices.fast, "strong": dataset.prices.strong} if dataset.prices else None,
                 "unit": "USD (cost_usd from the outcomes)" if dataset.cost_source == "outcomes" else "price units per task (--price)"},
        "verifier": {"recall": settings.recall, "false_positive_rate": settings.fpr,
                     "method": "expected values per task (deterministic, no simulation)"},
        "bootstrap": {"resamples": settings.resamples, "seed": settings.seed, "unit": "tasks resampled with replacement"},
        "strategies": table,
        "cascade_check": cascade_check(table, settings.cost_target),
        "routing_metrics": routing,
        "per_repo": per_repo(dataset, inputs, settings),
        "signals": signal_table(dataset, decisions, settings.mode),
        "per_task": [
            {"instance_id": t.instance_id, "repo": t.repo, "risk_score": d.risk_score, "lane": d.lane,
             "always_strong": [a.condition for a in d.always_strong], "signals": list(fired_signals(d)),
             "fast_resolved": dataset.fast_resolved[i], "strong_resolved": dataset.strong_resolved[i]}
            for i, (t, d) in enumerate(zip(dataset.tasks, decisions, strict=True))
        ],
        "notes": list(dataset.notes),
    }
    return result
