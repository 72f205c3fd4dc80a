"""`route-agent policy learn`: train the outcome predictor, choose the plan rule, report held-out figures.

Training (numpy, the `eval` extra): three L2-regularised logistic regressions fitted by Newton's
method on standardised features (`routing.learned.task_features`): P(fast resolves), P(strong
resolves) and P(strong resolves | fast failed), the last on the tasks the fast lane failed.

Honesty: every figure is out of sample.
- Leave-one-repository-out (LORO) over all tasks: each repository's tasks are predicted by models
  trained on the other repositories, and the plan rule's cost weight applied to them is chosen on
  predictions for those other repositories that are themselves out of sample (nested LORO): no
  figure for a repository uses its outcomes.
- `--holdout-repos`: the shipped predictor is trained, and its cost weight chosen (by LORO over
  the training repositories), without those repositories; they are reported separately.

The plan rule: per task, the plan with the highest expected resolve - w x cost (a strong attempt =
1), among plans all-strong does not dominate (`routing.learned.choose_plan`). The target picks w:
`quality=Q` the cheapest w whose resolve rate on the tuning predictions is >= Q x all-strong's;
`cost-weight=W` uses W as given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from route_agent.eval import targets
from route_agent.eval.data import Dataset, EvalInputError, ValueRule
from route_agent.policy.predictor import LogisticModel, Prediction, Predictor
from route_agent.routing.decide import Decision
from route_agent.routing.learned import PLANS, Plan, choose_plan, task_features

Vec = npt.NDArray[np.float64]
Mat = npt.NDArray[np.float64]

DEFAULT_L2 = 10.0
"""Ridge penalty on standardised coefficients (the intercept is not penalised)."""
MIN_FEATURE_TASKS = 5
"""A sparse feature (repository, word group, language) is kept when it fires on at least this many tasks."""
WEIGHT_GRID: tuple[float, ...] = tuple(round(float(w), 4) for w in (*np.linspace(0.0, 1.0, 41), 1.25, 1.5, 2.0, 3.0, 5.0))
MIN_LEDGER_TASKS = 200


LearnTarget = targets.Target[Literal["quality", "cost-weight"]]
LEARN_TARGET_RULES: dict[Literal["quality", "cost-weight"], ValueRule] = {
    "quality": targets.QUALITY, "cost-weight": targets.COST_WEIGHT,
}


def parse_learn_target(text: str) -> LearnTarget:
    return targets.parse_target(text, LEARN_TARGET_RULES, "quality=Q (fraction of all-strong's resolve rate, e.g. 1.0) "
                                "or cost-weight=W (resolve rate given up per strong attempt saved, e.g. 0.3)")


# --- features and fitting -------------------------------------------------------------------------

def feature_dicts(dataset: Dataset, decisions: Sequence[Decision]) -> list[dict[str, float]]:
    return [task_features(d.signals, d.risk_score, t.repo) for t, d in zip(dataset.tasks, decisions, strict=True)]


def feature_names(rows: Sequence[dict[str, float]]) -> list[str]:
    counts: dict[str, int] = {}
    for row in rows:
        for name, value in row.items():
            if value != 0.0:
                counts[name] = counts.get(name, 0) + 1
    return sorted(n for n, c in counts.items() if c >= MIN_FEATURE_TASKS and c < len(rows))


def matrix(rows: Sequence[dict[str, float]], names: Sequence[str]) -> Mat:
    out = np.zeros((len(rows), len(names)))
    index = {n: i for i, n in enumerate(names)}
    for r, row in enumerate(rows):
        for name, value in row.items():
            j = index.get(name)
            if j is not None:
                out[r, j] = value
    return out


def fit_logistic(x: Mat, y: Vec, l2: float = DEFAULT_L2, iterations: int = 50) -> tuple[float, Vec]:
    """Newton's method on the L2-penalised log-likelihood; x already standardised. (intercept, coef)."""
    n, k = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    beta = np.zeros(k + 1)
    rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3)) if n else 0.5
    beta[0] = math.log(rate / (1 - rate))
    penalty = np.full(k + 1, l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        z = design @ beta
        p = 1.0 / (1.0 + np.exp(-z))
        grad = design.T @ (y - p) - penalty * beta
        w = p * (1 - p)
        hess = (design * w[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(hess, grad)
        beta += step
        if float(np.abs(step).max()) < 1e-8:
            break
    return float(beta[0]), beta[1:]


def train_predictor(rows: Sequence[dict[str, float]], fast: Vec, strong: Vec, fast_cost: Vec, strong_cost: Vec,
                    l2: float = DEFAULT_L2, meta: dict[str, Any] | None = None) -> Predictor:
    names = feature_names(rows)
    x = matrix(rows, names)
    mean = x.mean(axis=0) if len(rows) else np.zeros(len(names))
    scale = x.std(axis=0) if len(rows) else np.ones(len(names))
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (x - mean) / scale
    failed = fast == 0
    models: dict[str, LogisticModel] = {}
    for target, xs, ys in (("fast", z, fast), ("strong", z, strong), ("strong_after_fast_failed", z[failed], strong[failed])):
        intercept, coef = fit_logistic(xs, ys, l2)
        models[target] = LogisticModel(intercept, {n: float(c) for n, c in zip(names, coef, strict=True)},
                                       int(ys.shape[0]), int(ys.sum()))
    return Predictor(tuple(names), {n: float(m) for n, m in zip(names, mean, strict=True)},
                     {n: float(s) for n, s in zip(names, scale, strict=True)}, models,
                     {"fast": float(fast_cost.mean()) if len(rows) else 0.0, "strong": float(strong_cost.mean()) if len(rows) else 1.0},
                     meta or {})


def predict_all(predictor: Predictor, rows: Sequence[dict[str, float]]) -> list[Prediction]:
    return [predictor.predict(r) for r in rows]


# --- plan outcomes on recorded data --------------------------------------------------------------

@dataclass(frozen=True)
class Outcomes:
    fast: Vec
    strong: Vec
    fast_cost: Vec
    strong_cost: Vec

    def take(self, index: Sequence[int]) -> Outcomes:
        idx = np.asarray(index, dtype=np.int64)
        return Outcomes(self.fast[idx], self.strong[idx], self.fast_cost[idx], self.strong_cost[idx])


def outcomes_of(dataset: Dataset) -> Outcomes:
    return Outcomes(np.asarray(dataset.fast_resolved, dtype=np.float64), np.asarray(dataset.strong_resolved, dtype=np.float64),
                    np.asarray(dataset.fast_cost, dtype=np.float64), np.asarray(dataset.strong_cost, dtype=np.float64))


def plan_outcome(plan: Plan, o: Outcomes, catch_rate: float, false_alarm_rate: float) -> tuple[Vec, Vec]:
    """Expected resolved and cost per task of `plan` on recorded outcomes (the evaluator's cascade model)."""
    if plan == "strong-only":
        return o.strong, o.strong_cost
    if plan in ("fast-only", "stop-after-fast"):
        return o.fast * (1.0 - false_alarm_rate), o.fast_cost
    escalate = o.fast * false_alarm_rate + (1.0 - o.fast) * catch_rate
    return o.fast * (1.0 - false_alarm_rate) + escalate * o.strong, o.fast_cost + escalate * o.strong_cost


def per_plan(o: Outcomes, catch_rate: float, false_alarm_rate: float) -> dict[str, tuple[Vec, Vec]]:
    out = {p: plan_outcome(p, o, catch_rate, false_alarm_rate) for p in ("cascade", "strong-only", "fast-only")}
    out["all-fast (no verification)"] = (o.fast, o.fast_cost)
    return out


Rule = tuple[float, Plan | None]
"""(cost weight, fixed plan): a fixed plan gives every open task that plan and ignores the predictions."""
FIXED_PLANS: tuple[Plan, ...] = ("cascade", "strong-only", "fast-only")


def choices(preds: Sequence[Prediction], floor: Sequence[bool], cost_ratio: float, rule: Rule | float, catch_rate: float,
            false_alarm_rate: float) -> list[Plan]:
    weight, fixed = rule if isinstance(rule, tuple) else (rule, None)
    return ["strong-only" if forced else fixed if fixed is not None
            else choose_plan(p, cost_ratio, weight, catch_rate, false_alarm_rate).plan
            for p, forced in zip(preds, floor, strict=True)]


def learned_outcome(chosen: Sequence[Plan], o: Outcomes, catch_rate: float, false_alarm_rate: float) -> tuple[Vec, Vec]:
    table = {p: plan_outcome(p, o, catch_rate, false_alarm_rate) for p in PLANS}
    idx = np.arange(len(chosen))
    res = np.stack([table[p][0] for p in PLANS])
    cost = np.stack([table[p][1] for p in PLANS])
    which = np.asarray([PLANS.index(p) for p in chosen], dtype=np.int64)
    return res[which, idx], cost[which, idx]


def pick_weight(preds: Sequence[Prediction], floor: Sequence[bool], o: Outcomes, cost_ratio: float, target: LearnTarget,
                catch_rate: float, false_alarm_rate: float) -> tuple[Rule, bool]:
    """The rule for the target on these (out-of-sample) predictions; (rule, target reached).

    Candidates: the learned choice at every cost weight, and each fixed plan for every task (the
    predictor must beat them on data it has not seen to be used). `quality=Q`: the cheapest with
    resolve >= Q x all-strong's (ties: more resolved, then a fixed plan); if none reaches it, the
    one that resolves most.
    """
    if target.kind == "cost-weight":
        return (target.value, None), True
    goal = target.value * float(o.strong.sum())
    candidates: list[Rule] = [(0.0, plan) for plan in FIXED_PLANS] + [(w, None) for w in WEIGHT_GRID]
    best: tuple[float, float, Rule] | None = None  # (cost, -resolved, rule)
    fallback: tuple[float, float, Rule] | None = None  # (-resolved, cost, rule)
    for rule in candidates:
        res, cost = learned_outcome(choices(preds, floor, cost_ratio, rule, catch_rate, false_alarm_rate), o, catch_rate, false_alarm_rate)
        r, c = float(res.sum()), float(cost.sum())
        if r >= goal - 1e-9 and (best is None or (c, -r) < best[:2]):
            best = (c, -r, rule)
        if fallback is None or (-r, c) < fallback[:2]:
            fallback = (-r, c, rule)
    if best is not None:
        return best[2], True
    assert fallback is not None
    return fallback[2], False


def rule_text(rule: Rule) -> str:
    weight, fixed = rule
    return f"{fixed} for every task (the predictions did not do better)" if fixed else f"learned per task, cost weight {weight:g}"


# --- the whole run ---------------------------------------------------------------------------------

def _groups(dataset: Dataset, index: Sequence[int]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i in index:
        out.setdefault(dataset.tasks[i].repo, []).append(i)
    return out


def _costs(o: Outcomes) -> float:
    strong = float(o.strong_cost.mean()) if o.strong_cost.size else 0.0
    return float(o.fast_cost.mean()) / strong if strong > 0 else 1.0


def loro_predictions(rows: Sequence[dict[str, float]], o: Outcomes, dataset: Dataset, index: Sequence[int],
                     l2: float) -> dict[int, Prediction]:
    """Each task in `index` predicted by a model trained on the other repositories in `index`."""
    groups = _groups(dataset, index)
    out: dict[int, Prediction] = {}
    for _repo, members in groups.items():
        train = [i for i in index if dataset.tasks[i].repo != _repo]
        if not train:
            continue
        t = o.take(train)
        model = train_predictor([rows[i] for i in train], t.fast, t.strong, t.fast_cost, t.strong_cost, l2)
        for i in members:
            out[i] = model.predict(rows[i])
    return out


@dataclass
class Fold:
    predictions: dict[int, Prediction]
    weights: dict[str, Rule]
    reached: dict[str, bool]


def nested_loro(rows: Sequence[dict[str, float]], o: Outcomes, dataset: Dataset, index: Sequence[int], floor: Sequence[bool],
                target: LearnTarget, catch_rate: float, false_alarm_rate: float, l2: float) -> Fold:
    """Outer LORO over `index`; the weight for each outer repository is chosen on inner LORO predictions
    of the other repositories (never on its own outcomes)."""
    groups = _groups(dataset, index)
    preds = loro_predictions(rows, o, dataset, index, l2)
    weights: dict[str, Rule] = {}
    reached: dict[str, bool] = {}
    for repo in groups:
        rest = [i for i in index if dataset.tasks[i].repo != repo]
        if target.kind == "cost-weight":
            weights[repo], reached[repo] = (target.value, None), True
            continue
        inner = loro_predictions(rows, o, dataset, rest, l2)
        kept = [i for i in rest if i in inner]
        sub = o.take(kept)
        weights[repo], reached[repo] = pick_weight([inner[i] for i in kept], [floor[i] for i in kept], sub, _costs(sub), target,
                                                   catch_rate, false_alarm_rate)
    return Fold(preds, weights, reached)


def _summary(res: Vec, cost: Vec, strong_res: Vec, strong_cost: Vec) -> dict[str, float]:
    n = max(1, res.shape[0])
    all_strong_res, all_strong_cost = float(strong_res.sum()), float(strong_cost.sum())
    return {
        "resolve_rate": float(res.sum()) / n,
        "total_cost": float(cost.sum()),
        "resolve_vs_all_strong": float(res.sum()) / all_strong_res if all_strong_res else float("nan"),
        "cost_vs_all_strong": float(cost.sum()) / all_strong_cost if all_strong_cost else float("nan"),
    }


def auc(scores: Sequence[float], labels: Vec) -> float | None:
    """Area under the ROC curve (ties count half): how well `scores` rank positives above negatives."""
    s = np.asarray(scores, dtype=np.float64)
    pos, neg = s[labels == 1], s[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def figures(o: Outcomes, chosen: Sequence[Plan], preds: Sequence[Prediction], catch_rate: float, false_alarm_rate: float,
            resamples: int, seed: int) -> dict[str, Any]:
    """Resolve rate and cost of every plan and of the learned choice (fractions of all-strong's),
    the plan mix, and the predictor's APGR (tasks ordered by predicted P(strong) - P(fast)) with its
    bootstrap interval."""
    from route_agent.eval.metrics import bootstrap, make_inputs, per_task_strategies, routing_metrics

    plans: dict[str, Any] = {}
    for name, (res, cost) in per_plan(o, catch_rate, false_alarm_rate).items():
        plans[name] = _summary(res, cost, o.strong, o.strong_cost)
    lres, lcost = learned_outcome(chosen, o, catch_rate, false_alarm_rate)
    plans["learned"] = _summary(lres, lcost, o.strong, o.strong_cost)
    # The bound a perfect predictor would reach: fast only where the fast lane resolves, strong only
    # where only the strong one does, stop after the fast attempt where neither does.
    oracle: list[Plan] = ["fast-only" if f else "strong-only" if s else "stop-after-fast" for f, s in zip(o.fast, o.strong, strict=True)]
    ores, ocost = learned_outcome(oracle, o, catch_rate, false_alarm_rate)
    plans["oracle plans (bound)"] = _summary(ores, ocost, o.strong, o.strong_cost)
    n = len(chosen)
    mix = {p: sum(1 for c in chosen if c == p) / n if n else 0.0 for p in PLANS}
    gain = [p.strong - p.fast for p in preds]
    x = make_inputs(o.fast.tolist(), o.strong.tolist(), o.fast_cost.tolist(), o.strong_cost.tolist(), gain, [False] * n,
                    catch_rate, false_alarm_rate)
    rm = routing_metrics(x)
    boot = bootstrap(x, per_task_strategies(x), resamples, seed)
    failed = o.fast == 0
    out: dict[str, Any] = {
        "tasks": n,
        "auc": {
            "fast": auc([p.fast for p in preds], o.fast),
            "strong": auc([p.strong for p in preds], o.strong),
            "strong_after_fast_failed": auc([p.strong_after_fast_failed for p, f in zip(preds, failed, strict=True) if f],
                                            o.strong[failed]),
            "strong_helps": auc(gain, ((o.fast == 0) & (o.strong == 1)).astype(np.float64)),
        },
        "plans": plans,
        "plan_mix": mix,
        "apgr": rm.apgr,
        "apgr_ci95": list(boot.apgr) if boot is not None and boot.apgr is not None else None,
        "apgr_undefined_resamples": boot.undefined if boot is not None else None,
        "bootstrap_resamples": resamples,
        "meets": {
            "quality_at_half_cost": bool(plans["learned"]["resolve_vs_all_strong"] >= 1 - 1e-9
                                         and plans["learned"]["cost_vs_all_strong"] <= 0.5 + 1e-9),
            "apgr_above_random": bool(boot is not None and boot.apgr is not None and boot.apgr[0] > 0.5),
            "no_more_than_all_strong": bool(plans["learned"]["cost_vs_all_strong"] <= 1 + 1e-9),
        },
    }
    return out


def frontier(o: Outcomes, preds: Sequence[Prediction], floor: Sequence[bool], cost_ratio: float, catch_rate: float,
             false_alarm_rate: float) -> list[dict[str, float]]:
    """Resolve rate and cost (fractions of all-strong's) of the learned choice for every cost weight."""
    points = []
    for w in WEIGHT_GRID:
        chosen = choices(preds, floor, cost_ratio, w, catch_rate, false_alarm_rate)
        res, cost = learned_outcome(chosen, o, catch_rate, false_alarm_rate)
        s = _summary(res, cost, o.strong, o.strong_cost)
        points.append({"cost_weight": w, "resolve_vs_all_strong": s["resolve_vs_all_strong"],
                       "cost_vs_all_strong": s["cost_vs_all_strong"]})
    return points


def learn(dataset: Dataset, decisions: Sequence[Decision], target: LearnTarget, catch_rate: float, false_alarm_rate: float,
          holdout: Sequence[str] | None, resamples: int = 1000, seed: int = 0, l2: float = DEFAULT_L2) -> tuple[dict[str, Any], Predictor]:
    from route_agent.eval.calibrate import split_repos

    rows = feature_dicts(dataset, decisions)
    o = outcomes_of(dataset)
    # The risk rules come first: a task they send strong (the floor or the threshold) stays strong.
    floor = [d.lane == "strong" for d in decisions]
    everything = list(range(len(rows)))
    if len(_groups(dataset, everything)) < 2:
        raise EvalInputError("learning holds repositories out, but the tasks come from one repository; "
                             "leave-one-repository-out needs at least two")
    tune, hold, held_repos = split_repos(dataset, holdout)
    # 1. LORO over all tasks, nested weight choice.
    fold = nested_loro(rows, o, dataset, everything, floor, target, catch_rate, false_alarm_rate, l2)
    cv_index = [i for i in everything if i in fold.predictions]
    cv_preds = [fold.predictions[i] for i in cv_index]
    cv_o = o.take(cv_index)
    ratio_all = _costs(o)
    cv_chosen: list[Plan] = []
    for i, p in zip(cv_index, cv_preds, strict=True):
        cv_chosen += choices([p], [floor[i]], ratio_all, fold.weights[dataset.tasks[i].repo], catch_rate, false_alarm_rate)
    cv = figures(cv_o, cv_chosen, cv_preds, catch_rate, false_alarm_rate, resamples, seed)
    cv["rule_by_repo"] = {repo: rule_text(rule) for repo, rule in fold.weights.items()}
    cv["frontier"] = frontier(cv_o, cv_preds, [floor[i] for i in cv_index], ratio_all, catch_rate, false_alarm_rate)
    per_repo = []
    for repo, members in sorted(_groups(dataset, cv_index).items(), key=lambda kv: (-len(kv[1]), kv[0])):
        pos = [cv_index.index(i) for i in members]
        sub = cv_o.take(pos)
        res, cost = learned_outcome([cv_chosen[k] for k in pos], sub, catch_rate, false_alarm_rate)
        row = _summary(res, cost, sub.strong, sub.strong_cost)
        per_repo.append({"repo": repo, "tasks": len(members), "rule": rule_text(fold.weights[repo]), **row})
    cv["per_repo"] = per_repo
    # 2. The shipped predictor: trained without the held-out repositories; weight by LORO on the rest.
    t = o.take(tune)
    ratio_tune = _costs(t)
    tune_fold_preds = loro_predictions(rows, o, dataset, tune, l2)
    kept = [i for i in tune if i in tune_fold_preds]
    sub = o.take(kept)
    rule, reached = pick_weight([tune_fold_preds[i] for i in kept], [floor[i] for i in kept], sub, _costs(sub), target,
                                  catch_rate, false_alarm_rate)
    weight, fixed = rule
    meta = {"target": str(target), "cost_weight": weight, "fixed_plan": fixed, "catch_rate": catch_rate,
            "false_alarm_rate": false_alarm_rate,
            "fast_model": dataset.fast_model, "strong_model": dataset.strong_model, "trained_on_tasks": len(tune),
            "trained_on_repos": sorted({dataset.tasks[i].repo for i in tune}), "held_out_repos": list(held_repos),
            "l2": l2, "cost_source": dataset.cost_source}
    predictor = train_predictor([rows[i] for i in tune], t.fast, t.strong, t.fast_cost, t.strong_cost, l2, meta)
    held: dict[str, Any] | None = None
    if hold:
        preds = [predictor.predict(rows[i]) for i in hold]
        ho = o.take(hold)
        chosen = choices(preds, [floor[i] for i in hold], ratio_tune, rule, catch_rate, false_alarm_rate)
        held = figures(ho, chosen, preds, catch_rate, false_alarm_rate, resamples, seed)
    result: dict[str, Any] = {
        "target": str(target),
        "verifier": {"catch_rate": catch_rate, "false_alarm_rate": false_alarm_rate},
        "fast_model": dataset.fast_model,
        "strong_model": dataset.strong_model,
        "tasks": len(rows),
        "repos": len(_groups(dataset, everything)),
        "fast_cost_vs_strong": ratio_all,
        "features": len(predictor.features),
        "cost_weight": weight,
        "fixed_plan": fixed,
        "rule": rule_text(rule),
        "target_reached_on_tuning": reached,
        "holdout_repos": list(held_repos),
        "tuning_tasks": len(tune),
        "holdout_tasks": len(hold),
        "cross_validation": cv,
        "holdout": held,
        "notes": list(dataset.notes),
    }
    return result, predictor


def predictor_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".predictor.json")


def write_learned_policy(out: Path, base_path: Path | None, predictor: Predictor, result: dict[str, Any], source: str) -> Path:
    """Write the predictor JSON next to `out` and a policy layer that references it (relative path)."""
    import yaml

    from route_agent.policy.loader import read_layer

    target_file = predictor_path_for(out)
    target_file.write_text(json.dumps(predictor.as_dict(), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    data: dict[str, Any] = {"version": 1}
    if base_path is not None:
        data.update(read_layer(base_path).data)
    routing = dict(data.get("routing") or {})
    routing["learned"] = {
        "predictor": target_file.name,
        "cost_weight": result["cost_weight"],
        **({"fixed_plan": result["fixed_plan"]} if result["fixed_plan"] else {}),
        "catch_rate": result["verifier"]["catch_rate"],
        "false_alarm_rate": result["verifier"]["false_alarm_rate"],
    }
    data["routing"] = routing
    cv = result["cross_validation"]["plans"]["learned"]
    header = [
        f"Learned by `route-agent policy learn --target {result['target']}`",
        f"models: fast={result['fast_model']} strong={result['strong_model']}; data: {source}",
        f"trained on {result['tuning_tasks']} task(s); held out: {', '.join(result['holdout_repos']) or 'none'}",
        f"leave-one-repository-out: learned plans resolve {cv['resolve_vs_all_strong'] * 100:.1f}% of all-strong's tasks "
        f"at {cv['cost_vs_all_strong'] * 100:.1f}% of its cost; predictor APGR {result['cross_validation']['apgr']:.3f}",
        "The always-strong floor and the strong threshold still come first; see route-agent policy explain.",
    ]
    body = yaml.safe_dump(data, sort_keys=False, width=100)
    out.write_text("".join(f"# {line}\n" for line in header) + body, encoding="utf-8")
    return target_file
