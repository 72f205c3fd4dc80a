"""`route-agent policy diff OLD NEW`: which tasks change lane, and what that does to resolve rate and cost."""

from __future__ import annotations

from typing import Any

from route_agent.eval.classify import SignalMode, classify_tasks, mode_label, ordering_key
from route_agent.eval.data import Dataset
from route_agent.policy.models import Policy


def policy_diff(dataset: Dataset, old: Policy, new: Policy, mode: SignalMode, recall: float, fpr: float,
                tasks_file: str = "tasks") -> dict[str, Any]:
    from route_agent.eval.metrics import make_inputs, per_task_strategies, summarize

    old_dec = classify_tasks(dataset.tasks, old, mode, tasks_file)
    new_dec = classify_tasks(dataset.tasks, new, mode, tasks_file)

    def strategies(decisions: Any) -> dict[str, dict[str, float]]:
        x = make_inputs(dataset.fast_resolved, dataset.strong_resolved, dataset.fast_cost, dataset.strong_cost,
                        [ordering_key(d) for d in decisions], [d.lane == "strong" for d in decisions], recall, fpr)
        pt = per_task_strategies(x)
        return {name: summarize(pt[name]) for name in ("router", "cascade", "all-strong", "all-fast")}

    before, after = strategies(old_dec), strategies(new_dec)
    changed: list[dict[str, Any]] = []
    for i, (task, a, b) in enumerate(zip(dataset.tasks, old_dec, new_dec, strict=True)):
        if a.lane != b.lane:
            changed.append({
                "instance_id": task.instance_id, "repo": task.repo,
                "old": {"lane": a.lane, "risk_score": a.risk_score, "reason": a.lane_reason},
                "new": {"lane": b.lane, "risk_score": b.risk_score, "reason": b.lane_reason},
                "fast_resolved": dataset.fast_resolved[i], "strong_resolved": dataset.strong_resolved[i],
            })
    plan_changes: list[dict[str, Any]] = []
    for i, (task, a, b) in enumerate(zip(dataset.tasks, old_dec, new_dec, strict=True)):
        if a.plan_name != b.plan_name:
            plan_changes.append({
                "instance_id": task.instance_id, "repo": task.repo, "old": a.plan_name, "new": b.plan_name,
                "predicted": b.plan.prediction.as_dict() if b.plan is not None and b.plan.prediction is not None else None,
                "fast_resolved": dataset.fast_resolved[i], "strong_resolved": dataset.strong_resolved[i],
            })
    moves: dict[str, int] = {}
    for c in plan_changes:
        key = f"{c['old']} -> {c['new']}"
        moves[key] = moves.get(key, 0) + 1
    delta = {
        name: {k: after[name][k] - before[name][k] for k in ("resolve_rate", "resolved", "total_cost", "strong_share")}
        for name in ("router", "cascade")
    }
    return {
        "signals_mode": mode,
        "signals_label": mode_label(mode),
        "leaky": mode == "gold",
        "tasks": len(dataset.tasks),
        "verifier": {"recall": recall, "false_positive_rate": fpr},
        "changed_lane": changed,
        "changed_plan": plan_changes,
        "plan_moves": dict(sorted(moves.items())),
        "fast_to_strong": sum(1 for c in changed if c["new"]["lane"] == "strong"),
        "strong_to_fast": sum(1 for c in changed if c["new"]["lane"] == "fast"),
        "score_changed": sum(1 for a, b in zip(old_dec, new_dec, strict=True) if a.risk_score != b.risk_score),
        "old": before,
        "new": after,
        "delta": delta,
    }


def render_diff(result: dict[str, Any], old_name: str, new_name: str) -> list[str]:
    lines = [f"policy diff {old_name} -> {new_name}: {result['tasks']} tasks, signals: {result['signals_label']}"]
    if result["leaky"]:
        lines.append("WARNING: gold signals come from the reference patch: a leaky upper bound")
    lines.append(f"lane changes: {len(result['changed_lane'])} ({result['fast_to_strong']} fast->strong, "
                 f"{result['strong_to_fast']} strong->fast); risk score changed on {result['score_changed']} task(s)")
    for c in result["changed_lane"][:50]:
        outcome = f"fast={'ok' if c['fast_resolved'] else 'fail'} strong={'ok' if c['strong_resolved'] else 'fail'}"
        lines.append(f"  {c['instance_id']} ({c['repo']}): {c['old']['lane']} (risk {c['old']['risk_score']}) -> "
                     f"{c['new']['lane']} (risk {c['new']['risk_score']}); {outcome}")
    if len(result["changed_lane"]) > 50:
        lines.append(f"  ... and {len(result['changed_lane']) - 50} more (--json lists all)")
    lines.append(f"plan changes: {len(result['changed_plan'])}"
                 + (" (" + ", ".join(f"{k}: {v}" for k, v in result["plan_moves"].items()) + ")" if result["plan_moves"] else ""))
    for c in result["changed_plan"][:50]:
        outcome = f"fast={'ok' if c['fast_resolved'] else 'fail'} strong={'ok' if c['strong_resolved'] else 'fail'}"
        lines.append(f"  {c['instance_id']} ({c['repo']}): plan {c['old']} -> {c['new']}; {outcome}")
    if len(result["changed_plan"]) > 50:
        lines.append(f"  ... and {len(result['changed_plan']) - 50} more (--json lists all)")
    for name in ("router", "cascade"):
        o, n, d = result["old"][name], result["new"][name], result["delta"][name]
        lines.append(f"{name}: resolve {o['resolve_rate'] * 100:.1f}% -> {n['resolve_rate'] * 100:.1f}% "
                     f"({d['resolve_rate'] * 100:+.1f} points), "
                     f"cost {o['total_cost']:.2f} -> {n['total_cost']:.2f} ({d['total_cost']:+.2f}), "
                     f"strong share {o['strong_share'] * 100:.1f}% -> {n['strong_share'] * 100:.1f}%")
    return lines
