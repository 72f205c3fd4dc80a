"""APGR, CPT, strategies and the cascade against small hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from route_agent.eval.metrics import (
    bootstrap,
    make_inputs,
    per_task_strategies,
    routing_metrics,
    summarize,
    threshold_curve,
)

# A: only strong resolves, B: only strong resolves, C: both resolve, D: neither.
FAST = [0, 0, 1, 0]
STRONG = [1, 1, 1, 0]


def inputs(key: list[float], lanes: list[bool] | None = None, recall: float = 0.8, fpr: float = 0.1,
           fast_cost: float = 1.0, strong_cost: float = 4.0):
    n = len(key)
    return make_inputs(FAST, STRONG, [fast_cost] * n, [strong_cost] * n, key, lanes or [False] * n, recall, fpr)


def test_perfect_router_apgr_and_cpt_by_hand() -> None:
    # Order A, B (gap 1 each) then C, D: PGR 0 -> .5 -> 1 -> 1 -> 1 at x = 0, .25, .5, .75, 1.
    m = routing_metrics(inputs([3, 3, 1, 0]))
    assert m.apgr == pytest.approx(0.25 * 0.25 + 0.25 * 0.75 + 0.25 + 0.25)  # 0.75
    assert m.cpt50 == pytest.approx(0.25)
    assert m.cpt80 == pytest.approx(0.25 + (0.8 - 0.5) / 0.5 * 0.25)  # 0.4


def test_worst_router_by_hand() -> None:
    m = routing_metrics(inputs([0, 0, 2, 3]))
    assert m.apgr == pytest.approx(0.25)
    assert m.cpt50 == pytest.approx(0.75)
    assert m.cpt80 == pytest.approx(0.75 + 0.6 * 0.25)


def test_random_router_is_half_and_ties_are_averaged() -> None:
    m = routing_metrics(inputs([5, 5, 5, 5]))  # one tie group: the expected random curve
    assert m.apgr == pytest.approx(0.5)
    assert m.cpt50 == pytest.approx(0.5)
    assert m.cpt80 == pytest.approx(0.8)


def test_random_router_bootstrap_is_half_every_resample() -> None:
    x = inputs([1, 1, 1, 1])
    boot = bootstrap(x, per_task_strategies(x), 200, seed=3)
    assert boot is not None
    assert boot.apgr is not None
    lo, hi = boot.apgr
    assert lo == pytest.approx(0.5) and hi == pytest.approx(0.5)


def test_apgr_undefined_when_strong_is_not_better() -> None:
    x = make_inputs([1, 0], [1, 0], [1, 1], [2, 2], [1, 0], [False, False], 0.8, 0.1)
    m = routing_metrics(x)
    assert m.apgr is None and m.cpt50 is None


def test_bootstrap_is_seeded_and_brackets_the_point() -> None:
    rng = np.random.default_rng(0)
    n = 300
    fast = rng.integers(0, 2, n).tolist()
    strong = [1 if f or rng.random() < 0.4 else 0 for f in fast]
    key = [float(s - f) + rng.random() for f, s in zip(fast, strong, strict=True)]
    x = make_inputs(fast, strong, [1.0] * n, [3.0] * n, key, [k > 0.9 for k in key], 0.8, 0.1)
    a = bootstrap(x, per_task_strategies(x), 300, seed=7)
    b = bootstrap(x, per_task_strategies(x), 300, seed=7)
    assert a is not None and b is not None and a.apgr == b.apgr
    point = routing_metrics(x).apgr
    assert point is not None and a.apgr is not None
    assert a.apgr[0] <= point <= a.apgr[1]
    assert point > 0.6  # an informative ordering beats random


def test_strategies_by_hand() -> None:
    # Lanes: A strong, others fast; prices fast 1, strong 4; R 0.8, F 0.1.
    x = inputs([0, 0, 0, 0], lanes=[True, False, False, False])
    s = {name: summarize(pt) for name, pt in per_task_strategies(x).items()}
    assert s["all-fast"]["resolved"] == 1 and s["all-fast"]["total_cost"] == 4
    assert s["all-strong"]["resolved"] == 3 and s["all-strong"]["total_cost"] == 16
    assert s["oracle"]["resolved"] == 3 and s["oracle"]["total_cost"] == 4 + 4 + 1 + 1
    assert s["router"]["resolved"] == 2 and s["router"]["total_cost"] == 4 + 1 + 1 + 1
    assert s["random"]["strong_share"] == pytest.approx(0.25)
    assert s["random"]["resolved"] == pytest.approx(0.25 * 3 + 0.75 * 1)
    # Cascade: A strong (1, cost 4). B fast fails, caught w.p. .8 -> strong resolves: .8, cost 1 + .8*4.
    # C fast ok: kept w.p. .9, falsely failed w.p. .1 -> strong resolves: 1, cost 1 + .1*4.
    # D fast fails, caught .8 -> strong fails: 0, cost 1 + .8*4.
    assert s["cascade"]["resolved"] == pytest.approx(1 + 0.8 + 1 + 0)
    assert s["cascade"]["total_cost"] == pytest.approx(4 + 4.2 + 1.4 + 4.2)
    assert s["cascade"]["strong_share"] == pytest.approx((1 + 0.8 + 0.1 + 0.8) / 4)


def test_false_fail_of_a_good_fast_patch_counts_the_strong_outcome() -> None:
    x = make_inputs([1], [0], [1.0], [4.0], [0.0], [False], 0.8, 0.5)
    cascade = summarize(per_task_strategies(x)["cascade"])
    assert cascade["resolved"] == pytest.approx(0.5)  # kept half the time; the strong retry fails
    assert cascade["total_cost"] == pytest.approx(1 + 0.5 * 4)


def test_threshold_curve_ends_are_all_fast_and_all_strong() -> None:
    x = inputs([3, 2, 1, 0])
    pts = per_task_strategies(x)
    curve = threshold_curve(x, pts["all-fast"])
    assert curve[0]["resolve_rate"] == pytest.approx(0.25) and curve[0]["total_cost"] == pytest.approx(4)
    assert curve[-1]["resolve_rate"] == pytest.approx(0.75) and curve[-1]["total_cost"] == pytest.approx(16)
    assert all(math.isfinite(p["total_cost"]) for p in curve)
