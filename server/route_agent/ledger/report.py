"""Per-lane figures from ledger rows: the design notes' ledger table, measured."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from route_agent.ledger.store import COLUMNS, AttemptRow


@dataclass(frozen=True)
class LaneFigures:
    lane: str
    attempts: int
    tasks: int
    passed: int
    pass_rate: float
    escalations: int
    escalation_rate: float
    latency_p50_s: float | None
    latency_p90_s: float | None
    cost_usd: float
    cost_per_attempt_usd: float
    reviewed: int
    rejected: int
    review_rejection_rate: float | None
    common_failure: str | None
    steps: int = 0
    """Agent-loop steps (model replies) of the lane's attempts."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), as numpy's default does."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def lane_figures(rows: Sequence[AttemptRow]) -> list[LaneFigures]:
    by_lane: dict[str, list[AttemptRow]] = {}
    for row in rows:
        by_lane.setdefault(row.lane, []).append(row)
    order = {"fast": 0, "strong": 1, "verifier": 2}
    out = []
    for lane in sorted(by_lane, key=lambda name: (order.get(name, 9), name)):
        items = by_lane[lane]
        n = len(items)
        passed = sum(1 for r in items if r.passed)
        escalations = sum(1 for r in items if r.escalated)
        latencies = [r.latency_s for r in items]
        cost = sum(r.cost_usd for r in items)
        reviewed = [r for r in items if r.review in ("accepted", "rejected")]
        rejected = sum(1 for r in reviewed if r.review == "rejected")
        failures = Counter(r.failure_kind for r in items if not r.passed and r.failure_kind)
        p50, p90 = percentile(latencies, 50), percentile(latencies, 90)
        out.append(
            LaneFigures(
                lane=lane,
                attempts=n,
                tasks=len({r.task for r in items}),
                passed=passed,
                pass_rate=passed / n,
                escalations=escalations,
                escalation_rate=escalations / n,
                latency_p50_s=None if p50 is None else round(p50, 3),
                latency_p90_s=None if p90 is None else round(p90, 3),
                cost_usd=round(cost, 6),
                cost_per_attempt_usd=round(cost / n, 6),
                reviewed=len(reviewed),
                rejected=rejected,
                review_rejection_rate=(rejected / len(reviewed)) if reviewed else None,
                common_failure=failures.most_common(1)[0][0] if failures else None,
                steps=sum(r.steps for r in items),
            )
        )
    return out


CALIBRATION_BINS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0001))


def calibration(rows: Sequence[AttemptRow]) -> list[dict[str, Any]]:
    """Predicted against observed per lane: for attempts a learned policy predicted, the mean
    predicted probability of passing and the observed pass rate, overall and per probability bin.
    The strong lane after a failed fast attempt in the same task is compared with
    P(strong | fast failed), a first strong attempt with P(strong)."""
    by_task: dict[str, list[AttemptRow]] = {}
    for row in rows:
        by_task.setdefault(row.task, []).append(row)
    pairs: dict[str, list[tuple[float, bool]]] = {"fast": [], "strong": []}
    for attempts in by_task.values():
        items = sorted(attempts, key=lambda r: r.attempt_no)
        fast_failed = any(r.lane == "fast" and not r.passed for r in items)
        for row in items:
            if not row.predicted or row.lane not in pairs:
                continue
            key = "fast" if row.lane == "fast" else ("strong_after_fast_failed" if fast_failed else "strong")
            if key in row.predicted:
                pairs[row.lane].append((row.predicted[key], row.passed))
    out = []
    for lane, values in pairs.items():
        if not values:
            continue
        bins = []
        for lo, hi in CALIBRATION_BINS:
            inside = [(p, ok) for p, ok in values if lo <= p < hi]
            if inside:
                bins.append({"from": lo, "to": min(hi, 1.0), "attempts": len(inside),
                             "predicted": round(sum(p for p, _ in inside) / len(inside), 4),
                             "observed": round(sum(1 for _, ok in inside if ok) / len(inside), 4)})
        out.append({"lane": lane, "attempts": len(values),
                    "predicted": round(sum(p for p, _ in values) / len(values), 4),
                    "observed": round(sum(1 for _, ok in values if ok) / len(values), 4),
                    "bins": bins})
    return out


def plan_counts(rows: Sequence[AttemptRow]) -> dict[str, int]:
    tasks: dict[str, str] = {}
    for row in rows:
        if row.plan:
            tasks.setdefault(row.task, row.plan)
    return dict(sorted(Counter(tasks.values()).items()))


def report_json(rows: Sequence[AttemptRow], location: str) -> dict[str, Any]:
    runs: dict[str, list[AttemptRow]] = {}
    for row in rows:
        runs.setdefault(row.task, []).append(row)
    final_pass = sum(1 for items in runs.values() if any(r.passed and r.result == "pass" for r in items))
    return {
        "ledger": location,
        "attempts": len(rows),
        "tasks": len(runs),
        "tasks_passed": final_pass,
        "cost_usd": round(sum(r.cost_usd for r in rows), 6),
        "lanes": [asdict(f) for f in lane_figures(rows)],
        "plans": plan_counts(rows),
        "calibration": calibration(rows),
    }


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def report_table(rows: Sequence[AttemptRow], location: str) -> str:
    figures = lane_figures(rows)
    if not figures:
        return f"ledger {location}: no attempts recorded yet\n"
    head = [
        "lane",
        "attempts",
        "tasks",
        "pass rate",
        "escalation",
        "latency p50",
        "latency p90",
        "cost",
        "review rejection",
        "common failure",
    ]
    body = [
        [
            f.lane,
            str(f.attempts),
            str(f.tasks),
            f"{f.pass_rate:.0%}",
            f"{f.escalation_rate:.0%}",
            _fmt(f.latency_p50_s, "{:.1f} s"),
            _fmt(f.latency_p90_s, "{:.1f} s"),
            f"${f.cost_usd:.4f}",
            _fmt(f.review_rejection_rate, "{:.0%}"),
            f.common_failure or "-",
        ]
        for f in figures
    ]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = [f"ledger {location}"]
    for row in [head, *body]:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    plans = plan_counts(rows)
    if plans:
        lines.append("plans (tasks): " + ", ".join(f"{name} {count}" for name, count in plans.items()))
    for lane in calibration(rows):
        bins = "; ".join(f"{b['from']:.1f}-{b['to']:.1f}: {b['predicted']:.0%} vs {b['observed']:.0%} ({b['attempts']})"
                         for b in lane["bins"])
        lines.append(f"predicted vs observed, {lane['lane']} lane: {lane['predicted']:.0%} predicted, {lane['observed']:.0%} passed "
                     f"over {lane['attempts']} attempt(s) [{bins}]")
    return "\n".join(lines) + "\n"


def export_csv(rows: Sequence[AttemptRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(row.values())
    return buffer.getvalue()
