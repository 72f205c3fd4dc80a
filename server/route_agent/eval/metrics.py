"""Strategy values, the router's threshold curve, APGR/CPT (RouteLLM), and bootstrap intervals.

All strategy numbers are expected values per task, summed: deterministic, no simulation.

Cascade (initial lane from the policy, then simulated verification with recall R and false-positive
rate F; costs c_f and c_s per task, outcomes f and s in {0, 1}):
- routed strong first: resolved s, cost c_s, strong called with probability 1;
- routed fast first, fast failed (f = 0): verification catches it with probability R and the task is
  escalated (resolved s, cost c_f + c_s); missed with probability 1 - R (the bad patch is accepted:
  unresolved, cost c_f);
- routed fast first, fast resolved (f = 1): accepted with probability 1 - F (resolved, cost c_f);
  falsely failed with probability F and escalated: the fast patch is discarded, the strong attempt's
  outcome counts (resolved s, cost c_f + c_s).
So E[resolved] = f(1-F) + (fF + (1-f)R) s and E[cost] = c_f + (fF + (1-f)R) c_s.

APGR and CPT follow RouteLLM (Ong et al. 2024): tasks are ordered by the router's score (strongest
first; always-strong tasks above every score), a threshold sweep sends the top share x to the strong
model, performance is the resolve rate of that mix, PGR(x) = (perf(x) - perf_fast) / (perf_strong -
perf_fast), APGR = the area under PGR over x in [0, 1], CPT(p) = the smallest x with PGR(x) >= p.
Tasks with equal scores are one group: within a group the curve is the straight line between the
group's ends, which is the expectation over random tie-breaking. A random router has PGR(x) = x in
expectation, so APGR 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Vec = npt.NDArray[np.float64]

STRATEGY_ORDER = (
    "all-fast",
    "all-strong",
    "random",
    "oracle",
    "router",
    "cascade",
    "random-cascade",
    "cascade-all-fast-first",
    "cascade-oracle-first",
)
STRATEGY_NOTES = {
    "all-fast": "every task to the fast model",
    "all-strong": "every task to the strong model",
    "random": "random lane at the router's strong share (expected value)",
    "oracle": "strong only where fast fails and strong succeeds (upper bound, needs the outcomes)",
    "router": "the policy's initial lane only, no verification",
    "cascade": "the policy's initial lane, simulated verification, escalation to strong",
    "random-cascade": "the cascade with a random initial lane at the router's strong share",
    "cascade-all-fast-first": "the cascade with every task sent to fast first",
    "cascade-oracle-first": "the cascade sent fast first exactly where fast resolves (bound, needs the outcomes)",
}


@dataclass(frozen=True)
class Inputs:
    fast: Vec
    strong: Vec
    fast_cost: Vec
    strong_cost: Vec
    key: Vec
    """Router ordering: higher = more strongly routed; always-strong tasks above every score."""
    lane_strong: Vec
    """1.0 where the policy's initial lane is strong."""
    recall: float
    fpr: float

    @property
    def n(self) -> int:
        return int(self.fast.shape[0])

    def take(self, index: Sequence[int] | npt.NDArray[np.int64]) -> Inputs:
        idx = np.asarray(index, dtype=np.int64)
        return Inputs(self.fast[idx], self.strong[idx], self.fast_cost[idx], self.strong_cost[idx], self.key[idx],
                      self.lane_strong[idx], self.recall, self.fpr)


def make_inputs(fast: Sequence[int], strong: Sequence[int], fast_cost: Sequence[float], strong_cost: Sequence[float],
                key: Sequence[float], lane_strong: Sequence[bool], recall: float, fpr: float) -> Inputs:
    def arr(values: Sequence[Any]) -> Vec:
        return np.asarray(values, dtype=np.float64)

    return Inputs(arr(fast), arr(strong), arr(fast_cost), arr(strong_cost), arr(key), arr(lane_strong), recall, fpr)


@dataclass(frozen=True)
class PerTask:
    resolved: Vec
    cost: Vec
    strong: Vec
    """Probability that the strong model is called for the task."""


def cascade_fast_first(x: Inputs) -> PerTask:
    escalate = x.fast * x.fpr + (1.0 - x.fast) * x.recall
    return PerTask(x.fast * (1.0 - x.fpr) + escalate * x.strong, x.fast_cost + escalate * x.strong_cost, escalate)


def _mix(strong_mask: Vec, strong: PerTask, fast: PerTask) -> PerTask:
    keep = 1.0 - strong_mask
    return PerTask(strong_mask * strong.resolved + keep * fast.resolved, strong_mask * strong.cost + keep * fast.cost,
                   strong_mask * strong.strong + keep * fast.strong)


def per_task_strategies(x: Inputs, strong_share: float | None = None) -> dict[str, PerTask]:
    """Every strategy's expected resolved/cost/strong-call per task. `strong_share` sets random's
    share (default: the router's share on these tasks)."""
    ones, zeros = np.ones(x.n), np.zeros(x.n)
    all_fast = PerTask(x.fast, x.fast_cost, zeros)
    all_strong = PerTask(x.strong, x.strong_cost, ones)
    p = float(x.lane_strong.mean()) if strong_share is None else strong_share
    pmask = np.full(x.n, p)
    oracle_mask = ((x.fast == 0) & (x.strong == 1)).astype(np.float64)
    fast_first = cascade_fast_first(x)
    return {
        "all-fast": all_fast,
        "all-strong": all_strong,
        "random": _mix(pmask, all_strong, all_fast),
        "oracle": _mix(oracle_mask, all_strong, all_fast),
        "router": _mix(x.lane_strong, all_strong, all_fast),
        "cascade": _mix(x.lane_strong, all_strong, fast_first),
        "random-cascade": _mix(pmask, all_strong, fast_first),
        "cascade-all-fast-first": fast_first,
        "cascade-oracle-first": _mix(1.0 - x.fast, all_strong, fast_first),
    }


def summarize(pt: PerTask) -> dict[str, float]:
    n = max(1, pt.resolved.shape[0])
    return {
        "resolve_rate": float(pt.resolved.sum() / n),
        "resolved": float(pt.resolved.sum()),
        "total_cost": float(pt.cost.sum()),
        "cost_per_task": float(pt.cost.sum() / n),
        "strong_share": float(pt.strong.sum() / n),
    }


@dataclass(frozen=True)
class Groups:
    """Tasks grouped by equal ordering key, strongest group first."""

    order_keys: Vec
    onehot: Vec
    """(n, G): task i belongs to group g."""


def groups_for(key: Vec) -> Groups:
    values = np.unique(key)[::-1]
    index = np.searchsorted(-values, -key)  # group index per task, 0 = highest key
    onehot = np.zeros((key.shape[0], values.shape[0]))
    onehot[np.arange(key.shape[0]), index] = 1.0
    return Groups(values, onehot)


def _pgr_points(weights: npt.NDArray[np.float64], x: Inputs, groups: Groups) -> tuple[Vec, Vec, Vec]:
    """For (B, n) task weights: strong-share points (B, G+1), PGR points (B, G+1) and the total gap."""
    n = weights.sum(axis=1, keepdims=True)
    gap = x.strong - x.fast
    share = np.cumsum(weights @ groups.onehot, axis=1) / n
    gained = np.cumsum(weights @ (groups.onehot * gap[:, None]), axis=1)
    total = gained[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        pgr = np.where(total > 0, gained / np.where(total > 0, total, 1.0), np.nan)
    zero = np.zeros((weights.shape[0], 1))
    return np.hstack([zero, share]), np.hstack([zero, pgr]), total[:, 0]


def _apgr(share: Vec, pgr: Vec) -> Vec:
    widths = np.diff(share, axis=1)
    heights = (pgr[:, 1:] + pgr[:, :-1]) / 2.0
    result: Vec = (widths * heights).sum(axis=1)
    return result


def _cpt(share: Vec, pgr: Vec, target: float) -> Vec:
    reached = pgr >= target - 1e-12
    ok = reached.any(axis=1)
    j = np.argmax(reached, axis=1)
    rows = np.arange(share.shape[0])
    jm = np.maximum(j - 1, 0)
    p0, p1 = pgr[rows, jm], pgr[rows, j]
    x0, x1 = share[rows, jm], share[rows, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(p1 > p0, (target - p0) / (p1 - p0), 0.0)
    value = np.where(j == 0, 0.0, x0 + np.clip(frac, 0.0, 1.0) * (x1 - x0))
    out: Vec = np.where(ok & ~np.isnan(pgr[:, -1]), value, np.nan)
    return out


@dataclass(frozen=True)
class RoutingMetrics:
    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    curve_share: list[float]
    curve_pgr: list[float]


def _num(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def routing_metrics(x: Inputs, groups: Groups | None = None) -> RoutingMetrics:
    g = groups or groups_for(x.key)
    share, pgr, _ = _pgr_points(np.ones((1, x.n)), x, g)
    apgr = _apgr(share, pgr)[0]
    return RoutingMetrics(_num(apgr), _num(_cpt(share, pgr, 0.5)[0]), _num(_cpt(share, pgr, 0.8)[0]),
                          [float(v) for v in share[0]], [float(v) if np.isfinite(v) else float("nan") for v in pgr[0]])


def threshold_curve(x: Inputs, fast_first: PerTask, groups: Groups | None = None) -> list[dict[str, float]]:
    """Resolve rate, cost and strong share when the top k groups go strong first, k = 0..G."""
    g = groups or groups_for(x.key)
    n = max(1, x.n)
    strong = PerTask(x.strong, x.strong_cost, np.ones(x.n))
    d_res = np.concatenate([[0.0], np.cumsum((strong.resolved - fast_first.resolved) @ g.onehot)])
    d_cost = np.concatenate([[0.0], np.cumsum((strong.cost - fast_first.cost) @ g.onehot)])
    d_strong = np.concatenate([[0.0], np.cumsum((strong.strong - fast_first.strong) @ g.onehot)])
    count = np.concatenate([[0.0], np.cumsum(g.onehot.sum(axis=0))])
    base_r, base_c, base_s = fast_first.resolved.sum(), fast_first.cost.sum(), fast_first.strong.sum()
    points: list[dict[str, float]] = []
    for k in range(len(d_res)):
        points.append({
            "strong_first_share": float(count[k] / n),
            "resolve_rate": float((base_r + d_res[k]) / n),
            "total_cost": float(base_c + d_cost[k]),
            "strong_share": float((base_s + d_strong[k]) / n),
            "min_key_strong": float(g.order_keys[k - 1]) if k else float("inf"),
        })
    return points


def bootstrap_indices(n: int, resamples: int, seed: int) -> npt.NDArray[np.float64]:
    """(B, n) resampling counts: how often each task is drawn in each resample (seeded)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    flat = (draws + (np.arange(resamples) * n)[:, None]).ravel()
    counts: npt.NDArray[np.float64] = np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)
    return counts


def interval(samples: Vec) -> tuple[float, float] | None:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class Bootstrap:
    resamples: int
    apgr: tuple[float, float] | None
    cpt50: tuple[float, float] | None
    cpt80: tuple[float, float] | None
    undefined: int
    """Resamples where the strong model did not beat the fast one (PGR undefined)."""
    strategies: dict[str, dict[str, tuple[float, float] | None]]
    router_minus_random: tuple[float, float] | None
    cascade_minus_random_cascade: tuple[float, float] | None
    apgr_minus_random: tuple[float, float] | None
    p_apgr_le_random: float | None
    """Share of resamples in which APGR <= 0.5 (a one-sided bootstrap p-value)."""


def bootstrap(x: Inputs, per_task: dict[str, PerTask], resamples: int, seed: int, groups: Groups | None = None) -> Bootstrap | None:
    if resamples <= 0 or x.n == 0:
        return None
    g = groups or groups_for(x.key)
    weights = bootstrap_indices(x.n, resamples, seed)
    share, pgr, _ = _pgr_points(weights, x, g)
    apgr = _apgr(share, pgr)
    undefined = int(np.isnan(apgr).sum())
    strategies: dict[str, dict[str, tuple[float, float] | None]] = {}
    stacked = {name: (weights @ pt.resolved / x.n, weights @ pt.cost, weights @ pt.strong / x.n) for name, pt in per_task.items()}
    for name, (res, cost, strong) in stacked.items():
        strategies[name] = {"resolve_rate": interval(res), "total_cost": interval(cost), "strong_share": interval(strong)}
    finite = apgr[np.isfinite(apgr)]
    cascade_gap = stacked["cascade"][0] - stacked["random-cascade"][0] if "random-cascade" in stacked else None
    return Bootstrap(
        resamples=resamples,
        apgr=interval(apgr),
        cpt50=interval(_cpt(share, pgr, 0.5)),
        cpt80=interval(_cpt(share, pgr, 0.8)),
        undefined=undefined,
        strategies=strategies,
        router_minus_random=interval(stacked["router"][0] - stacked["random"][0]) if "random" in stacked else None,
        cascade_minus_random_cascade=interval(cascade_gap) if cascade_gap is not None else None,
        apgr_minus_random=interval(apgr - 0.5),
        p_apgr_le_random=float((finite <= 0.5).mean()) if finite.size else None,
    )
