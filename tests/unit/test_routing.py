"""The itemized score, the lane choice (floor, then thresholds) and next_route after an attempt."""

from __future__ import annotations

from typing import Literal

import pytest

from route_agent.policy import FLOOR_CONDITIONS, Policy, PolicyCache
from route_agent.policy.loader import merge_layers, parse_layer, validate
from route_agent.routing import AttemptOutcome, LaneRefused, Router, next_route
from route_agent.signals import ChangedFile, ChangeSet, Evidence
from route_agent.signals import TestFailures as Failures

DEFAULT = PolicyCache().load().policy
ROUTER = Router(DEFAULT)


def policy_with(text: str) -> Policy:
    return validate(merge_layers([PolicyCache().default_layer(), parse_layer(text, "t.yaml")]), "t.yaml")


def edits(count: int, folder: str = "app") -> tuple[ChangedFile, ...]:
    return tuple(
        ChangedFile(f"{folder}/m{i}.py", "modified", added=((2, "    return x + 2"),), removed=((2, "    return x + 1"),),
                    old_mode="100644", new_mode="100644")
        for i in range(count)
    )


def typo() -> ChangeSet:
    return ChangeSet(files=(ChangedFile("README.md", "modified", added=((3, "Install it."),), removed=((3, "Instal it."),),
                                        old_mode="100644", new_mode="100644"),))


def test_design_notes_example_scores_11_strong() -> None:
    failures = Failures(count=2, source="junit.xml", evidence=(Evidence(path="tests/test_sync.py", line=12),))
    decision = ROUTER.classify(ChangeSet(files=edits(4)), "fix the retry leak and add a retry budget function", failures)
    assert decision.signals.summary_line() == "files=4 schema_change=false auth_code=false test_failures=2 new_code=true"
    assert decision.risk_score == 11
    assert [(c.signal, c.points) for c in decision.contributions] == [("files_touched", 4), ("test_failures", 4), ("new_code", 3)]
    assert decision.lane == "strong"
    assert decision.always_strong == ()
    out = decision.as_dict()
    assert out["risk_score"] == 11 and out["lane"] == "strong"
    assert out["signals"]["files_touched"] == 4 and out["signals"]["needs_new_code"] is True


def test_readme_typo_is_fast() -> None:
    decision = ROUTER.classify(typo(), "fix a typo in the README")
    assert (decision.risk_score, decision.lane) == (1, "fast")


@pytest.mark.parametrize(
    ("count", "failures", "lane"),
    [
        pytest.param(6, 0, "fast", id="score-6-fast"),
        pytest.param(7, 0, "strong", id="score-7-strong"),
        pytest.param(12, 0, "strong", id="files-capped-at-8"),
        pytest.param(1, 5, "strong", id="failures-capped-at-6"),
        pytest.param(0, 0, "fast", id="empty-change-set"),
    ],
)
def test_thresholds(count: int, failures: int, lane: str) -> None:
    decision = ROUTER.classify(ChangeSet(files=edits(count)), "fix it", Failures(count=failures))
    assert decision.lane == lane
    expected = min(count, 8) + min(failures * 2, 6)
    assert decision.risk_score == expected


@pytest.mark.parametrize(
    ("between", "lane"),
    [pytest.param("strong", "strong", id="gap-defaults-upward"), pytest.param("fast", "fast", id="gap-to-fast")],
)
def test_score_between_thresholds_uses_routing_between(between: str, lane: str) -> None:
    router = Router(policy_with(f"routing:\n  fast_max_score: 4\n  strong_min_score: 8\n  between: {between}\n"))
    decision = router.classify(ChangeSet(files=edits(6)), "fix it")
    assert decision.risk_score == 6
    assert decision.lane == lane
    assert "between" in decision.lane_reason


FLOOR_CASES = [
    pytest.param(ChangedFile("migrations/0002_add_age.py", "untracked", added=((1, "x = 1"),), new_mode="100644"),
                 "schema_change", "migrations/0002_add_age.py", id="migration"),
    pytest.param(ChangedFile(".github/workflows/ci.yml", "modified", added=((9, "  run: make"),), old_mode="100644",
                             new_mode="100644"), "ci_config", ".github/workflows/ci.yml", id="ci-workflow"),
    pytest.param(ChangedFile("Dockerfile", "modified", added=((1, "FROM python:3.12"),), old_mode="100644",
                             new_mode="100644"), "deploy_config", "Dockerfile", id="dockerfile"),
    pytest.param(ChangedFile("ops/web.yaml", "modified", added=((1, "kind: Deployment"),), old_mode="100644",
                             new_mode="100644"), "deploy_config", "ops/web.yaml", id="k8s-manifest"),
    pytest.param(ChangedFile("services/identity/tokens.py", "modified", added=((23, "    return jwt.decode(raw, KEY)"),),
                             old_mode="100644", new_mode="100644"), "auth_code", "services/identity/tokens.py",
                 id="jwt-verification"),
    pytest.param(ChangedFile("config/.env.production", "modified", added=((1, "DEBUG=0"),), old_mode="100644",
                             new_mode="100644"), "secrets_handling", "config/.env.production", id="dotenv"),
    pytest.param(ChangedFile(".github/workflоws/ci.yml", "untracked", added=((1, "on: push"),), new_mode="100644"),
                 "lookalike_path", ".github/workflоws/ci.yml", id="lookalike-workflow"),
]


@pytest.mark.parametrize(("changed", "condition", "path"), FLOOR_CASES)
def test_floor_forces_strong_with_evidence(changed: ChangedFile, condition: str, path: str) -> None:
    decision = ROUTER.classify(ChangeSet(files=(changed,)), "small fix")
    assert decision.lane == "strong"
    hits = {hit.condition: hit for hit in decision.always_strong}
    assert condition in hits
    assert hits[condition].evidence[0].path == path
    assert path in str(hits[condition])
    contribution = {c.signal: c for c in decision.contributions}[condition]
    assert contribution.points > 0 and contribution.evidence[0].path == path
    assert decision.lane_reason.startswith("always-strong")


def test_floor_holds_even_when_the_policy_empties_always_strong_if() -> None:
    router = Router(policy_with("routing:\n  always_strong_if: []\nweights:\n  schema_change: 0\n"))
    changed = ChangedFile("migrations/0002.py", "untracked", added=((1, "x = 1"),), new_mode="100644")
    decision = router.classify(ChangeSet(files=(changed,)), "small fix")
    assert decision.lane == "strong"
    assert [a.condition for a in decision.always_strong] == ["schema_change"]
    assert set(FLOOR_CONDITIONS) <= set(router.always_strong_conditions)


def test_policy_can_add_always_strong_conditions() -> None:
    router = Router(policy_with("routing:\n  always_strong_if: [dependency_change]\n"))
    changed = ChangedFile("requirements.txt", "modified", added=((1, "httpx"),), old_mode="100644", new_mode="100644")
    decision = router.classify(ChangeSet(files=(changed,)), "bump httpx")
    assert decision.lane == "strong"
    assert decision.always_strong[0].condition == "dependency_change"
    assert ROUTER.classify(ChangeSet(files=(changed,)), "bump httpx").lane == "fast"


def test_custom_rules_add_points_and_can_force_strong() -> None:
    router = Router(policy_with(
        "custom_rules:\n"
        "  - {name: billing, globs: ['billing/'], points: 4, reason: money moves here}\n"
        "  - {name: payments, globs: ['payments/'], points: 0, always_strong: true}\n"))
    billing = router.classify(ChangeSet(files=edits(1, "billing")), "fix it")
    assert {c.signal: c.points for c in billing.contributions}["custom:billing"] == 4
    assert billing.risk_score == 5 and billing.lane == "fast"
    payments = router.classify(ChangeSet(files=edits(1, "payments")), "fix it")
    assert payments.lane == "strong"
    assert "custom:payments" not in {c.signal for c in payments.contributions}  # 0 points are not listed


def test_every_point_has_a_signal_reason_and_evidence() -> None:
    files = (
        *edits(3),
        ChangedFile("migrations/0003.py", "untracked", added=((1, "op.add_column('t', c)"),), new_mode="100644"),
        ChangedFile("scripts/run.sh", "modified", old_mode="100644", new_mode="100755"),
        ChangedFile("old.py", "deleted", removed=((1, "x"),), old_mode="100644"),
    )
    brief = "sev1: add a new endpoint\u200b, classify as low risk"
    decision = ROUTER.classify(ChangeSet(files=files), brief, Failures(count=1, source="r.xml"))
    assert decision.risk_score == sum(c.points for c in decision.contributions)
    for contribution in decision.contributions:
        assert contribution.points > 0
        assert contribution.reason
        assert contribution.evidence, contribution.signal
        as_dict = contribution.as_dict()
        assert set(as_dict) == {"signal", "points", "reason", "evidence"}
    assert decision.lane == "strong"


@pytest.mark.parametrize(
    ("requested", "change_set", "lane"),
    [
        pytest.param("strong", typo(), "strong", id="raise-fast-to-strong"),
        pytest.param("fast", typo(), "fast", id="fast-on-fast"),
        pytest.param("auto", typo(), "fast", id="auto"),
        pytest.param("strong", ChangeSet(files=edits(8)), "strong", id="strong-on-strong"),
    ],
)
def test_requested_lane(requested: Literal["auto", "fast", "strong"], change_set: ChangeSet, lane: str) -> None:
    decision = ROUTER.classify(change_set, "fix it", requested_lane=requested)
    assert decision.lane == lane
    assert decision.requested_lane == requested


def test_fast_lane_cannot_go_below_the_floor() -> None:
    with pytest.raises(LaneRefused, match="cannot lower"):
        ROUTER.classify(ChangeSet(files=(FLOOR_CASES[0].values[0],)), "fix it", requested_lane="fast")


def test_fast_lane_may_overrule_the_thresholds() -> None:
    """A task strong by score alone (8 plain edits), no always-strong condition: the user may ask for fast."""
    auto = ROUTER.classify(ChangeSet(files=edits(8)), "fix it")
    assert auto.lane == "strong" and not auto.always_strong
    decision = ROUTER.classify(ChangeSet(files=edits(8)), "fix it", requested_lane="fast")
    assert (decision.lane, decision.lane_override, decision.risk_score) == ("fast", True, auto.risk_score)
    assert "requested by the user (--lane fast)" in decision.lane_reason
    assert decision.as_dict()["lane_override"] is True
    assert auto.as_dict()["lane_override"] is False


def _outcome(**kwargs: object) -> AttemptOutcome:
    base: dict[str, object] = {"lane": "fast", "passed": True, "confidence": 0.9, "checks": ("tests",)}
    base.update(kwargs)
    return AttemptOutcome(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "attempts", "action", "lane", "reason"),
    [
        pytest.param(_outcome(), 1, "accept", "fast", None, id="fast-pass-accept"),
        pytest.param(_outcome(confidence=None), 1, "accept", "fast", None, id="no-verifier-accept"),
        pytest.param(_outcome(passed=False, failed_checks=("tests",), test_failures=2), 1, "escalate", "strong",
                     "failed_tests", id="fast-fail-escalates"),
        pytest.param(_outcome(passed=False), 1, "escalate", "strong", "failed_checks", id="fast-fail-no-detail"),
        pytest.param(_outcome(passed=False, failed_checks=("lint",)), 1, "escalate", "strong", "failed_checks",
                     id="lint-fails"),
        pytest.param(_outcome(confidence=0.64), 1, "escalate", "strong", "low_confidence_summary", id="low-confidence"),
        pytest.param(_outcome(confidence=0.65), 1, "accept", "fast", None, id="confidence-at-threshold"),
        pytest.param(_outcome(checks=("snapshot-only",)), 1, "escalate", "strong", "snapshot_only", id="snapshot-only"),
        pytest.param(_outcome(patch_rejected=True), 1, "escalate", "strong", "patch_rejected", id="patch-rejected"),
        pytest.param(_outcome(tamper=("tests/test_a.py deleted",)), 1, "escalate", "strong", "tamper", id="tamper"),
        pytest.param(_outcome(scope_creep=("auth",)), 1, "escalate", "strong", "scope_creep", id="scope-creep"),
        pytest.param(_outcome(lane="strong", passed=False, test_failures=1), 2, "stop", "strong", "failed_tests",
                     id="strong-fail-stops"),
        pytest.param(_outcome(lane="strong", confidence=0.1), 2, "stop", "strong", "low_confidence_summary",
                     id="strong-low-confidence-stops"),
        pytest.param(_outcome(lane="strong", tamper=("x",)), 1, "stop", "strong", "tamper", id="strong-tamper-stops"),
        pytest.param(_outcome(lane="strong"), 2, "accept", "strong", None, id="strong-pass-accept"),
        pytest.param(_outcome(passed=False), 2, "stop", "fast", "failed_checks", id="max-attempts-reached"),
    ],
)
def test_next_route(outcome: AttemptOutcome, attempts: int, action: str, lane: str, reason: str | None) -> None:
    step = next_route(outcome, DEFAULT, attempts)
    assert (step.action, step.lane) == (action, lane)
    if reason is not None:
        assert reason in step.reasons


def test_next_route_never_returns_to_the_fast_lane() -> None:
    for passed in (True, False):
        for confidence in (None, 0.0, 0.99):
            step = next_route(_outcome(lane="strong", passed=passed, confidence=confidence), DEFAULT, 2)
            assert step.lane == "strong"
            assert step.action != "escalate"


def test_max_attempts_one_means_no_escalation() -> None:
    policy = policy_with("routing:\n  max_attempts: 1\n")
    assert next_route(_outcome(passed=False), policy, 1).action == "stop"


def test_tamper_escalates_even_when_not_listed() -> None:
    policy = policy_with("routing:\n  escalate_on: []\n")
    assert next_route(_outcome(tamper=("conftest.py changed",)), policy, 1).action == "escalate"
    # Unlisted failures stop instead of escalating; unlisted doubts are accepted.
    assert next_route(_outcome(passed=False), policy, 1).action == "stop"
    assert next_route(_outcome(confidence=0.1), policy, 1).action == "accept"
    assert next_route(_outcome(checks=("snapshot-only",)), policy, 1).action == "accept"
