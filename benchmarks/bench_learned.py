"""Learned routing at routing time: the predictor and the plan choice, in pure Python.

Target: features + three logistic models + the plan choice well under 1 ms per decision. Printed
beside the floor it adds to (the same `Router.decide` without a learned policy), measured in the
same run, as medians over many repeats. Uses the shipped `policies/learned.yaml` (its predictor
has the full feature set trained on the shipped data) and a long real brief from the shipped tasks.

    .venv/bin/python benchmarks/bench_learned.py [--repeats 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from route_agent.eval.changesets import pretask_change_set
from route_agent.policy import PolicyCache
from route_agent.routing import Router
from route_agent.routing.learned import choose_plan, task_features

ROOT = Path(__file__).resolve().parent.parent


def median_us(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    tasks = [json.loads(line) for line in (ROOT / "data/swebench-verified/tasks.jsonl").read_text(encoding="utf-8").splitlines()]
    plain = Router(PolicyCache().load().policy)
    # The longest brief the rules send to the fast lane (a plan is chosen only for those): the
    # features' worst case.
    open_tasks = [t for t in tasks
                  if plain.classify(pretask_change_set(t["repo"], t["problem_statement"]), t["problem_statement"]).lane == "fast"]
    task = max(open_tasks, key=lambda t: len(t["problem_statement"]))
    typical = sorted(open_tasks, key=lambda t: len(t["problem_statement"]))[len(open_tasks) // 2]
    median_brief = statistics.median(len(t["problem_statement"]) for t in tasks)
    change_set = pretask_change_set(task["repo"], task["problem_statement"])
    learned_policy = PolicyCache().load(ROOT / "policies/learned.yaml").policy
    learned = Router(learned_policy, repo=task["repo"])
    assert learned.predictor is not None and learned_policy.routing.learned is not None
    settings = learned_policy.routing.learned
    signals = plain.classify(change_set, task["problem_statement"]).signals
    predictor = learned.predictor

    features_us = median_us(lambda: task_features(signals, 3, task["repo"]), args.repeats)
    feats = task_features(signals, 3, task["repo"])
    predict_us = median_us(lambda: predictor.predict(feats), args.repeats)
    pred = predictor.predict(feats)
    choose_us = median_us(lambda: choose_plan(pred, predictor.cost_ratio, settings.cost_weight, settings.catch_rate,
                                              settings.false_alarm_rate), args.repeats)
    brief = typical["problem_statement"]
    typical_signals = plain.classify(pretask_change_set(typical["repo"], brief), brief).signals
    typical_us = (median_us(lambda: learned.decide(typical_signals), args.repeats)
                  - median_us(lambda: plain.decide(typical_signals), args.repeats))
    plain_us = median_us(lambda: plain.decide(signals), args.repeats)
    learned_us = median_us(lambda: learned.decide(signals), args.repeats)
    print(f"brief: {len(task['problem_statement']):,} characters ({task['instance_id']}; the median brief has {median_brief:,.0f}); "
          f"predictor: {len(predictor.features)} features")
    print(f"features {features_us:.1f} us, 3 logistic models {predict_us:.1f} us, plan choice {choose_us:.1f} us")
    print(f"Router.decide: {plain_us:.1f} us without a learned policy, {learned_us:.1f} us with one "
          f"(+{learned_us - plain_us:.1f} us, {learned_us / plain_us:.2f}x); target: the learned part < 1000 us: "
          f"{'ok' if learned_us - plain_us < 1000 else 'OVER'}")
    print(f"the median brief the rules send fast ({len(brief):,} characters): the learned part adds {typical_us:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
