"""Score a task, choose its lane, and decide the next route after an attempt.

Lane choice, in order:
1. the always-strong floor (built in) plus the policy's `always_strong_if`: any hit => strong;
2. `risk_score <= fast_max_score` => fast;
3. `risk_score >= strong_min_score` => strong;
4. a score strictly between the two thresholds => `routing.between` (strong by default: when the
   policy leaves a gap, the task defaults upward).
A lane the user asks for may raise the lane, never lower it below what the floor requires.

Then the plan (`routing/learned.py`), only for a task the rules above send to the fast lane and the
user did not ask a lane for: with `routing.learned`, the predicted outcomes choose among the
cascade, strong only, fast only and stop after a failed fast attempt; without it, the cascade,
unless the fast lane cannot pay (`LaneEconomics`: fast-first costs no less than strong alone), when
the task goes to the strong lane. A lane the rules choose strong stays strong (plan strong only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from route_agent.policy import FLOOR_REASONS, effective_always_strong
from route_agent.policy.models import Policy, Weights
from route_agent.signals.changeset import ChangeSet
from route_agent.signals.compute import Evidence, Signals, TestFailures, compute_signals
from route_agent.signals.paths import PathMatcher
from route_agent.signals.taint import CleanText

if TYPE_CHECKING:
    from route_agent.policy.predictor import Predictor
    from route_agent.routing.learned import PlanChoice

Lane = Literal["fast", "strong"]

# Signals whose weight is a flat number of points in `weights`: the Weights model's int fields, in
# its order (the names are written once, there).
FLAT_SIGNALS: tuple[str, ...] = tuple(name for name, spec in Weights.model_fields.items() if spec.annotation is int)


@dataclass(frozen=True, slots=True)
class Contribution:
    signal: str
    points: int
    reason: str
    evidence: tuple[Evidence, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "points": self.points, "reason": self.reason, "evidence": [e.as_dict() for e in self.evidence]}


@dataclass(frozen=True, slots=True)
class AlwaysStrong:
    condition: str
    reason: str
    evidence: tuple[Evidence, ...] = ()

    def __str__(self) -> str:
        where = f": {self.evidence[0]}" if self.evidence else ""
        more = f" (+{len(self.evidence) - 1} more)" if len(self.evidence) > 1 else ""
        return f"{self.condition} ({self.reason}){where}{more}"


@dataclass(frozen=True)
class Decision:
    signals: Signals
    risk_score: int
    contributions: tuple[Contribution, ...]
    always_strong: tuple[AlwaysStrong, ...]
    lane: Lane
    lane_reason: str
    requested_lane: Literal["auto", "fast", "strong"] = "auto"
    plan: PlanChoice | None = None
    """The plan for the task (cascade, strong-only, fast-only, stop-after-fast) and, with a learned
    policy, the predicted probabilities behind it."""
    lane_override: bool = False
    """The user asked for the fast lane on a task the thresholds send strong (never past the floor)."""

    @property
    def plan_name(self) -> str:
        return self.plan.plan if self.plan is not None else ("strong-only" if self.lane == "strong" else "cascade")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "signals": self.signals.as_dict(),
            "risk_score": self.risk_score,
            "contributions": [c.as_dict() for c in self.contributions],
            "always_strong": [str(a) for a in self.always_strong],
            "lane": self.lane,
            "lane_reason": self.lane_reason,
            "plan": self.plan_name,
            "lane_override": self.lane_override,
        }
        if self.plan is not None:
            out["plan_detail"] = self.plan.as_dict()
        return out


@dataclass(frozen=True)
class LaneEconomics:
    """What one attempt per lane typically costs here, for the rule that skips a fast lane that cannot pay."""

    fast_cost_vs_strong: float
    """A fast attempt's typical cost as a fraction of a strong attempt's."""
    escalation_rate: float | None = None
    """The share of fast attempts that escalated (the ledger's), None when not measured."""
    source: str = "prices"


class LaneRefused(Exception):
    """The user asked for a lane the policy forbids (a downgrade below the always-strong floor)."""


class Router:
    """Everything derived from one policy that scoring needs; build once, reuse per keystroke."""

    def __init__(self, policy: Policy, repo: str | None = None, economics: LaneEconomics | None = None) -> None:
        self.policy = policy
        self.matcher = PathMatcher(policy)
        self.always_strong_conditions = effective_always_strong(policy)
        self._custom = {f"custom:{rule.name}": rule for rule in policy.custom_rules}
        self.repo = repo
        self.economics = economics
        self.predictor: Predictor | None = None
        if policy.routing.learned is not None:
            from route_agent.policy.predictor import load_predictor

            self.predictor = load_predictor(policy.routing.learned.predictor)

    def classify(
        self,
        change_set: ChangeSet,
        brief: str,
        test_failures: TestFailures | None = None,
        requested_lane: Literal["auto", "fast", "strong"] = "auto",
        brief_clean: CleanText | None = None,
    ) -> Decision:
        signals = compute_signals(change_set, brief, self.matcher, test_failures, brief_clean)
        return self.decide(signals, requested_lane)

    def score(self, signals: Signals) -> tuple[int, tuple[Contribution, ...]]:
        weights = self.policy.weights
        items: list[Contribution] = []
        if signals.files_touched:
            points = min(signals.files_touched * weights.files.per, weights.files.max)
            items.append(Contribution("files_touched", points, f"{signals.files_touched} file(s) in the change set",
                                      tuple(Evidence(path=p) for p in signals.paths[:20])))
        raised = signals.raised
        if "test_failures" in raised:
            sig = raised["test_failures"]
            points = min(sig.count * weights.test_failures.per, weights.test_failures.max)
            items.append(Contribution("test_failures", points, sig.reason, sig.evidence))
        for name in FLAT_SIGNALS:
            if name in raised:
                sig = raised[name]
                items.append(Contribution(name, int(getattr(weights, name)), sig.reason, sig.evidence))
        for name, rule in self._custom.items():
            if name in raised:
                sig = raised[name]
                items.append(Contribution(name, rule.points, rule.reason or sig.reason, sig.evidence))
        items = [c for c in items if c.points > 0]
        return sum(c.points for c in items), tuple(items)

    def always_strong_hits(self, signals: Signals) -> tuple[AlwaysStrong, ...]:
        hits: list[AlwaysStrong] = []
        raised = signals.raised
        for condition in self.always_strong_conditions:
            sig = raised.get(condition)
            if sig is not None and condition not in signals.brief_only:
                hits.append(AlwaysStrong(condition, FLOOR_REASONS.get(condition, sig.reason), sig.evidence))
        # Look-alikes of protected paths default upward, like the paths they imitate.
        if "lookalike_path" in raised and "lookalike_path" not in self.always_strong_conditions:
            sig = raised["lookalike_path"]
            hits.append(AlwaysStrong("lookalike_path", FLOOR_REASONS["lookalike_path"], sig.evidence))
        for name, rule in self._custom.items():
            if rule.always_strong and name in raised:
                hits.append(AlwaysStrong(name, rule.reason or f"custom rule {rule.name}", raised[name].evidence))
        return tuple(hits)

    def decide(self, signals: Signals, requested_lane: Literal["auto", "fast", "strong"] = "auto") -> Decision:
        risk_score, contributions = self.score(signals)
        hits = self.always_strong_hits(signals)
        routing = self.policy.routing
        lane: Lane
        if hits:
            lane, reason = "strong", "always-strong: " + ", ".join(h.condition for h in hits)
        elif risk_score <= routing.fast_max_score:
            lane, reason = "fast", f"risk {risk_score} <= fast_max_score {routing.fast_max_score}"
        elif risk_score >= routing.strong_min_score:
            lane, reason = "strong", f"risk {risk_score} >= strong_min_score {routing.strong_min_score}"
        else:
            lane = routing.between
            reason = f"risk {risk_score} is between the thresholds; routing.between is {lane}"
        if requested_lane == "strong" and lane == "fast":
            lane, reason = "strong", "requested by the user (--lane strong)"
        override = False
        if requested_lane == "fast" and lane == "strong":
            if hits:
                raise LaneRefused(f"the built-in floor requires the strong lane for this task ({reason}); "
                                  "a request for the fast lane cannot lower it")
            # Thresholds are a default the user may overrule for one task; the floor is not.
            lane, reason, override = "fast", f"requested by the user (--lane fast) over the thresholds: {reason}", True
        plan = self._plan(signals, risk_score, lane, requested_lane)
        if plan is not None and plan.lane != lane:
            lane, reason = plan.lane, f"{reason}; {plan.reason}"
        return Decision(signals, risk_score, contributions, hits, lane, reason, requested_lane, plan, override)

    def _plan(self, signals: Signals, risk_score: int, lane: Lane, requested_lane: str) -> PlanChoice | None:
        from route_agent.routing.learned import PlanChoice, choose_plan, fast_lane_pays, task_features

        learned = self.policy.routing.learned
        if lane == "strong" or requested_lane != "auto":
            return None
        policy_plan = self.policy.routing.plan
        if policy_plan != "auto":
            return PlanChoice(policy_plan, "strong" if policy_plan == "strong-only" else "fast", f"routing.plan is {policy_plan}")
        economics = self.economics
        if learned is not None and self.predictor is not None:
            ratio = economics.fast_cost_vs_strong if economics is not None else self.predictor.cost_ratio
            prediction = self.predictor.predict(task_features(signals, risk_score, self.repo))
            if learned.fixed_plan is not None:
                fixed = learned.fixed_plan
                return PlanChoice(fixed, "strong" if fixed == "strong-only" else "fast",
                                  f"{fixed}: the learned policy found no per-task choice better than {fixed} for every task "
                                  "on repositories it had not seen (routing.learned.fixed_plan)", prediction, cost_ratio=ratio)
            return choose_plan(prediction, ratio, learned.cost_weight, learned.catch_rate, learned.false_alarm_rate,
                               tuple(learned.plans))
        if economics is not None and self.policy.routing.skip_fast_when_it_cannot_pay and \
                not fast_lane_pays(economics.fast_cost_vs_strong, economics.escalation_rate):
            esc = f" + {economics.escalation_rate:.0%} escalations" if economics.escalation_rate is not None else ""
            return PlanChoice("strong-only", "strong",
                              f"the fast lane cannot pay here: a fast attempt costs {economics.fast_cost_vs_strong:.0%} of a strong one"
                              f"{esc} ({economics.source}), so fast-first costs more than the strong lane alone",
                              cost_ratio=economics.fast_cost_vs_strong)
        return None


@dataclass(frozen=True)
class AttemptOutcome:
    """What verification concluded about one lane attempt (the design notes' RunResult)."""

    lane: Lane
    passed: bool
    confidence: float | None = None
    """The verifier's confidence; None when no verifier is used for the lane (a verifier that was
    asked and failed to answer reports 0.0, never None)."""
    checks: tuple[str, ...] = ()
    """Labels of what ran; `snapshot-only` marks checks too weak to trust, `unverified` a fast
    attempt that no check and no verifier looked at."""
    failed_checks: tuple[str, ...] = ()
    test_failures: int = 0
    patch_rejected: bool = False
    tamper: tuple[str, ...] = ()
    scope_creep: tuple[str, ...] = ()


@dataclass(frozen=True)
class NextStep:
    action: Literal["accept", "escalate", "stop"]
    lane: Lane
    reasons: tuple[str, ...] = field(default=())


def next_route(outcome: AttemptOutcome, policy: Policy, attempts_made: int, plan: str | None = None) -> NextStep:  # noqa: PLR0912 (the escalation rules, one branch each, in the policy's order)
    """After an attempt: accept it, escalate to the strong lane, or stop with a failure.

    Never routes back to the same cheap lane; a failed strong attempt stops with its findings.
    Tamper findings and scope creep always escalate; the policy's `escalate_on` decides whether the
    other failures escalate (listed) or stop the run (not listed), and whether low confidence and
    snapshot-only checks count at all. Under the plans `fast-only` and `stop-after-fast` a fast
    attempt that would escalate stops instead, with its findings and the plan named among the reasons.
    """
    routing = policy.routing
    escalate_on = set(routing.escalate_on)
    hard: list[str] = []  # failures: escalate if listed, else stop
    soft: list[str] = []  # doubts: escalate if listed, else accept
    forced: list[str] = []
    if outcome.patch_rejected:
        hard.append("patch_rejected")
    if outcome.test_failures or ("tests" in outcome.failed_checks):
        hard.append("failed_tests")
    if outcome.failed_checks and set(outcome.failed_checks) - {"tests"}:
        hard.append("failed_checks")
    if not outcome.passed and not hard:
        hard.append("failed_checks")
    if outcome.confidence is not None and outcome.confidence < routing.confidence_threshold:
        soft.append("low_confidence_summary")
    if "snapshot-only" in outcome.checks:
        soft.append("snapshot_only")
    if "unverified" in outcome.checks:
        soft.append("unverified")
    if outcome.tamper:
        forced.append("tamper")
    if outcome.scope_creep:
        forced.append("scope_creep")

    can_escalate = outcome.lane == "fast" and attempts_made < routing.max_attempts
    reasons = tuple(forced + hard + [s for s in soft if s in escalate_on])
    if forced or any(h in escalate_on for h in hard) or any(s in escalate_on for s in soft):
        if can_escalate and plan in ("fast-only", "stop-after-fast"):
            return NextStep("stop", outcome.lane, (*reasons, f"plan:{plan}"))
        if can_escalate:
            return NextStep("escalate", "strong", reasons)
        return NextStep("stop", outcome.lane, reasons)
    if hard:
        return NextStep("stop", outcome.lane, tuple(hard))
    return NextStep("accept", outcome.lane, tuple(s for s in soft))
