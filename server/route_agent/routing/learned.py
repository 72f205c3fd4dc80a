"""Learned routing: predict each lane's outcome from pre-task features and choose a plan per task.

Pure Python (no numpy): evaluated at routing time on every decision, well under a millisecond.

- `task_features` turns what is known before a task runs (the brief's length, code blocks,
  tracebacks, named files and symbols, a few word groups; the change set's size and languages; the
  signals and risk score; the repository) into named numbers. Training (`route_agent.eval.learn`)
  and routing use this one function, so they cannot drift apart.
- `Predictor` (policy/predictor.py: the policy loader checks the file it names) holds three
  regularised logistic models read from a JSON file next to the policy: P(fast passes
  verification), P(strong passes), P(strong passes | fast failed), and the typical cost of each lane.
- `choose_plan` picks one of four plans by expected resolve rate and cost: the cascade (fast, then
  strong when verification fails), strong only, fast only (never escalate: the strong lane is not
  predicted to do better on this task), and stop after a failed fast attempt (the strong lane might
  do better on the task, but not often enough after the fast one failed to be worth its price).
  "fast only" and "stop after failed fast" run the same way (fast, verify, accept or stop with the
  findings); they differ in why, which the reason says. The always-strong floor and a `--lane`
  request come first: the learned choice only decides what the floor leaves open.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from route_agent.policy.predictor import Prediction
from route_agent.signals.compute import Signals

Plan = Literal["cascade", "strong-only", "fast-only", "stop-after-fast"]
PLANS: tuple[Plan, ...] = ("cascade", "strong-only", "fast-only", "stop-after-fast")
PLAN_FIRST_LANE: dict[Plan, Literal["fast", "strong"]] = {
    "cascade": "fast", "strong-only": "strong", "fast-only": "fast", "stop-after-fast": "fast",
}

MAX_SCANNED_CHARS = 4000
"""Features read the brief's first 4,000 characters (its length counts in full): routing stays fast
on a brief with a long log pasted in."""
_TOKEN = re.compile(r"[A-Za-z_]\w*")
_CALL = re.compile(r"\w\(")
_DOTTED = re.compile(r"\w\.[A-Za-z_]")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"https?://\S+")
_EXCEPTION_SUFFIXES = ("Error", "Exception", "Warning")
# Word groups of the brief: each fires when any of its words occurs (lower-cased words).
WORD_GROUPS: dict[str, frozenset[str]] = {
    "crash": frozenset({"crash", "crashes", "segfault", "hang", "hangs", "infinite", "recursion"}),
    "wrong_result": frozenset({"wrong", "incorrect", "incorrectly", "unexpected", "instead", "should"}),
    "error": frozenset({"error", "errors", "exception", "raises", "raise", "fails", "failing", "failure"}),
    "feature": frozenset({"add", "support", "feature", "allow", "option", "new", "implement", "enhancement"}),
    "docs": frozenset({"doc", "docs", "documentation", "docstring", "typo", "message", "warning"}),
    "deprecation": frozenset({"deprecate", "deprecated", "deprecation", "removed", "compatibility"}),
    "performance": frozenset({"slow", "performance", "memory", "speed", "faster"}),
    "regression": frozenset({"regression", "regressed", "previously", "worked", "broke", "broken"}),
    "unclear": frozenset({"maybe", "perhaps", "unsure", "not", "sure", "think", "discussion", "proposal"}),
}
LANGUAGES: dict[str, str] = {
    "py": "python", "pyi": "python", "pyx": "python", "js": "javascript", "jsx": "javascript", "ts": "typescript",
    "tsx": "typescript", "go": "go", "rs": "rust", "java": "java", "kt": "java", "c": "c", "h": "c", "cc": "c", "cpp": "c",
    "hpp": "c", "rb": "ruby", "php": "php", "rst": "docs", "md": "docs", "txt": "docs", "html": "web", "css": "web",
    "yaml": "config", "yml": "config", "toml": "config", "cfg": "config", "ini": "config", "json": "config",
}
SIGNAL_FEATURES = ("schema_change", "auth_code", "new_code", "dependency_change", "deletions", "sensitive_path",
                   "test_failures", "hidden_characters", "brief_manipulation", "production_incident")


def repo_name(repo: str | None) -> str:
    """The repository's name as features use it: `owner/name` stays, a path keeps its last part."""
    if not repo:
        return ""
    text = repo.rstrip("/")
    if "/" in text and not text.startswith(("/", ".", "~")) and text.count("/") == 1:
        return text.lower()
    return text.rsplit("/", 1)[-1].lower()


def task_features(signals: Signals, risk_score: int, repo: str | None = None) -> dict[str, float]:
    """Named pre-task features of one task (absent features are 0)."""
    brief = signals.brief
    text = _URL.sub(" ", brief[:MAX_SCANNED_CHARS])
    tokens = _TOKEN.findall(text)
    unique = set(tokens)
    wordset = {w.lower() for w in unique}
    exceptions = sum(1 for w in unique if w[0].isupper() and w.endswith(_EXCEPTION_SUFFIXES))
    camel = sum(1 for w in unique if w[0].isupper() and not w.isupper() and any(c.isupper() for c in w[1:]))
    fences = text.count("```") // 2 + text.count("~~~") // 2
    out: dict[str, float] = {
        "log_chars": math.log1p(len(brief)),
        "log_words": math.log1p(len(tokens)),
        "log_lines": math.log1p(brief.count("\n") + 1 if brief else 0),
        "code_blocks": float(min(fences, 5)),
        "has_code_block": float(fences > 0),
        "has_traceback": float("Traceback (most recent call last)" in text or 'File "' in text),
        "exception_names": float(min(exceptions, 5)),
        "log_calls": math.log1p(len(_CALL.findall(text))),
        "log_dotted_names": math.log1p(len(_DOTTED.findall(text))),
        "log_camel_names": math.log1p(camel),
        "log_inline_code": math.log1p(len(_INLINE_CODE.findall(text))),
        "has_url": float(bool(_URL.search(brief[:MAX_SCANNED_CHARS]))),
        "files_named": float(min(signals.files_touched, 10)),
        "no_files_named": float(signals.files_touched == 0),
        "many_files_named": float(signals.files_touched >= 3),
        "risk_score": float(min(risk_score, 30)),
    }
    for group, members in WORD_GROUPS.items():
        if wordset & members:
            out[f"words:{group}"] = 1.0
    languages = {LANGUAGES.get(p.rsplit(".", 1)[-1].lower(), "other") for p in signals.paths if "." in p.rsplit("/", 1)[-1]}
    for language in languages:
        out[f"lang:{language}"] = 1.0
    if signals.paths:
        out["test_files_named"] = float(any("test" in p.lower() for p in signals.paths))
    for name in SIGNAL_FEATURES:
        if name in signals.raised:
            out[f"signal:{name}"] = 1.0
    name = repo_name(repo)
    if name:
        out[f"repo:{name}"] = 1.0
    return out


@dataclass(frozen=True)
class PlanValue:
    resolve: float
    """Expected probability that the plan ends with a resolved task."""
    cost: float
    """Expected cost in units of one strong attempt."""
    strong_calls: float


def plan_values(pred: Prediction, cost_ratio: float, catch_rate: float, false_alarm_rate: float) -> dict[Plan, PlanValue]:
    """Expected resolve and cost (strong attempt = 1) of each plan for one task.

    Fast first: the fast attempt is accepted when it passes verification (probability
    p_f (1 - false alarm)); a failed fast attempt is caught with the catch rate. The cascade
    escalates what verification fails: a caught failure (the strong lane then resolves it with
    P(strong | fast failed)) or a false alarm on a good patch (then P(strong)).
    """
    pf, ps, psf = pred.fast, pred.strong, pred.strong_after_fast_failed
    accepted_good = pf * (1.0 - false_alarm_rate)
    false_alarm = pf * false_alarm_rate
    caught = (1.0 - pf) * catch_rate
    escalate = false_alarm + caught
    fast_stop = PlanValue(accepted_good, cost_ratio, 0.0)
    return {
        "cascade": PlanValue(accepted_good + false_alarm * ps + caught * psf, cost_ratio + escalate, escalate),
        "strong-only": PlanValue(ps, 1.0, 1.0),
        "fast-only": fast_stop,
        "stop-after-fast": fast_stop,
    }


@dataclass(frozen=True)
class PlanChoice:
    plan: Plan
    lane: Literal["fast", "strong"]
    reason: str
    prediction: Prediction | None = None
    values: Mapping[Plan, PlanValue] | None = None
    cost_ratio: float | None = None

    @property
    def escalate_after_fast(self) -> bool:
        return self.plan == "cascade"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plan": self.plan, "first_lane": self.lane, "reason": self.reason}
        if self.prediction is not None:
            out["predicted"] = self.prediction.as_dict()
        if self.values is not None:
            out["expected"] = {p: {"resolve": round(v.resolve, 4), "cost_vs_strong": round(v.cost, 4)} for p, v in self.values.items()}
        if self.cost_ratio is not None:
            out["fast_cost_vs_strong"] = round(self.cost_ratio, 4)
        return out


def choose_plan(pred: Prediction, cost_ratio: float, cost_weight: float, catch_rate: float, false_alarm_rate: float,
                plans: tuple[Plan, ...] = PLANS) -> PlanChoice:
    """The plan with the highest expected resolve - cost_weight x cost (strong attempt = 1).

    A plan all-strong dominates (no better expected resolve at no lower cost) is never chosen, even
    with cost_weight 0; ties go to strong only (the safer plan), then in `PLANS` order.
    """
    values = plan_values(pred, cost_ratio, catch_rate, false_alarm_rate)
    strong = values["strong-only"]
    def dominated(p: Plan) -> bool:
        return values[p].cost >= strong.cost - 1e-12 and values[p].resolve <= strong.resolve + 1e-12

    allowed = [p for p in plans if p == "strong-only" or not dominated(p)]
    # fast only and stop after failed fast are the same run; which name applies depends on why.
    fast_named: Plan = "fast-only" if pred.strong <= pred.fast else "stop-after-fast"
    allowed = [p for p in allowed if p not in ("fast-only", "stop-after-fast") or p == fast_named or fast_named not in plans]
    if "strong-only" not in allowed:
        allowed.append("strong-only")

    def utility(p: Plan) -> tuple[float, int]:
        v = values[p]
        return (v.resolve - cost_weight * v.cost, 1 if p == "strong-only" else 0)

    best = max(allowed, key=utility)
    v = values[best]
    if best == "strong-only":
        reason = (f"strong only: P(strong) {pred.strong:.2f} at cost 1.00 beats the cascade "
                  f"({values['cascade'].resolve:.2f} at {values['cascade'].cost:.2f})")
    elif best == "cascade":
        reason = (f"cascade: P(fast) {pred.fast:.2f}, P(strong | fast failed) {pred.strong_after_fast_failed:.2f}; "
                  f"expected {v.resolve:.2f} at {v.cost:.2f} of a strong attempt")
    elif best == "fast-only":
        reason = f"fast only: the strong lane is not predicted to do better here (P(fast) {pred.fast:.2f}, P(strong) {pred.strong:.2f})"
    else:
        reason = (f"stop after a failed fast attempt: P(strong | fast failed) {pred.strong_after_fast_failed:.2f} "
                  f"is not worth a strong attempt at {1.0:.2f} vs the fast lane's {cost_ratio:.2f}")
    return PlanChoice(best, PLAN_FIRST_LANE[best], reason, pred, values, cost_ratio)


def fast_lane_pays(cost_ratio: float, escalation_rate: float | None) -> bool:
    """Whether sending work to the fast lane first can cost less than the strong lane alone.

    Fast first costs `cost_ratio + escalation_rate` strong attempts per task on average (every
    escalation pays for both lanes); without a measured escalation rate only the price decides.
    """
    return cost_ratio + (escalation_rate or 0.0) < 1.0
