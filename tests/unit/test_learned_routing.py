"""Learned routing in the core: features, the predictor file, the plan choice, the floor first, the
price rule, and the plans that stop after a failed fast attempt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from route_agent.policy import PolicyCache, PolicyError
from route_agent.policy.predictor import PREDICTOR_FORMAT, Prediction, Predictor, PredictorError, load_predictor
from route_agent.routing import AttemptOutcome, Router, next_route
from route_agent.routing.decide import LaneEconomics
from route_agent.routing.learned import choose_plan, fast_lane_pays, plan_values, task_features
from route_agent.signals import ChangedFile, ChangeSet

DEFAULT = PolicyCache().load().policy
BRIEF_WITH_TRACE = (
    "Crash in `parse()` when the input is empty\n```\nTraceback (most recent call last):\n"
    '  File "pkg/parser.py", line 3, in parse\nValueError: empty\n```\nIt should return None instead.'
)


def readme_change() -> ChangeSet:
    return ChangeSet(files=(ChangedFile("README.md", "modified", added=((3, "Install it."),), removed=((3, "Instal it."),)),))


def predictor_dict(intercepts: dict[str, float], coef: dict[str, dict[str, float]] | None = None) -> dict[str, object]:
    features = ["has_traceback", "log_chars"]
    return {
        "format": PREDICTOR_FORMAT,
        "features": features,
        "mean": {"has_traceback": 0.0, "log_chars": 0.0},
        "scale": {"has_traceback": 1.0, "log_chars": 1.0},
        "models": {t: {"intercept": intercepts[t], "coef": (coef or {}).get(t, {})}
                   for t in ("fast", "strong", "strong_after_fast_failed")},
        "cost": {"fast": 1.0, "strong": 4.0},
        "meta": {"target": "test"},
    }


def write_learned(tmp_path: Path, intercepts: dict[str, float], extra: str = "", coef: dict[str, dict[str, float]] | None = None) -> Path:
    (tmp_path / "p.predictor.json").write_text(json.dumps(predictor_dict(intercepts, coef)))
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\nrouting:\n  learned:\n    predictor: p.predictor.json\n    cost_weight: 0.3\n{extra}")
    return policy


def test_features_read_the_brief_the_change_set_and_the_repository() -> None:
    decision = Router(DEFAULT).classify(ChangeSet(files=(ChangedFile("pkg/parser.py", "modified"),)), BRIEF_WITH_TRACE)
    f = task_features(decision.signals, decision.risk_score, "/home/me/src/Parser")
    assert f["has_traceback"] == 1.0 and f["has_code_block"] == 1.0 and f["code_blocks"] == 1.0
    assert f["exception_names"] == 1.0 and f["files_named"] == 1.0 and f["lang:python"] == 1.0
    assert f["words:crash"] == 1.0 and f["words:wrong_result"] == 1.0 and "words:docs" not in f
    assert f["repo:parser"] == 1.0 and task_features(decision.signals, 0, "django/django")["repo:django/django"] == 1.0
    assert f["risk_score"] == float(decision.risk_score)


def test_predictor_round_trip_and_bad_files(tmp_path: Path) -> None:
    p = Predictor.from_dict(predictor_dict({"fast": 0.0, "strong": 1.0, "strong_after_fast_failed": -1.0},
                                           {"fast": {"has_traceback": -2.0}}))
    assert p.predict({}).fast == pytest.approx(0.5)
    assert p.predict({"has_traceback": 1.0}).fast == pytest.approx(1 / (1 + 2.718281828459045 ** 2))
    assert Predictor.from_dict(json.loads(json.dumps(p.as_dict()))).as_dict() == p.as_dict()
    assert p.cost_ratio == 0.25
    with pytest.raises(PredictorError, match="not a route-agent predictor"):
        Predictor.from_dict({"format": "other"}, "x.json")
    bad = predictor_dict({"fast": 0.0, "strong": 0.0, "strong_after_fast_failed": 0.0}, {"strong": {"unknown": 1.0}})
    with pytest.raises(PredictorError, match="unlisted features: unknown"):
        Predictor.from_dict(bad, "x.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PredictorError, match="not valid JSON"):
        load_predictor(tmp_path / "broken.json")


@pytest.mark.parametrize(
    ("pred", "ratio", "weight", "plan"),
    [
        pytest.param(Prediction(0.6, 0.7, 0.5), 0.25, 0.3, "cascade", id="cheap-fast-likely-cascade"),
        pytest.param(Prediction(0.1, 0.8, 0.8), 0.25, 0.3, "strong-only", id="fast-hopeless-strong-only"),
        pytest.param(Prediction(0.3, 0.8, 0.8), 0.9, 0.0, "strong-only", id="expensive-fast-dominated"),
        pytest.param(Prediction(0.5, 0.45, 0.05), 0.25, 0.3, "fast-only", id="strong-no-better-fast-only"),
        pytest.param(Prediction(0.5, 0.6, 0.05), 0.25, 0.3, "stop-after-fast", id="strong-after-failure-hopeless-stop"),
    ],
)
def test_choose_plan(pred: Prediction, ratio: float, weight: float, plan: str) -> None:
    choice = choose_plan(pred, ratio, weight, 0.8, 0.1)
    assert choice.plan == plan
    assert choice.lane == ("strong" if plan == "strong-only" else "fast")


def test_a_dominated_plan_is_never_chosen_even_at_cost_weight_zero() -> None:
    for pf in (0.0, 0.3, 0.6, 0.9):
        for ratio in (0.5, 0.8, 1.0, 1.5):
            pred = Prediction(pf, 0.5, 0.4)
            values = plan_values(pred, ratio, 0.8, 0.1)
            choice = choose_plan(pred, ratio, 0.0, 0.8, 0.1)
            v, s = values[choice.plan], values["strong-only"]
            assert choice.plan == "strong-only" or not (v.cost >= s.cost and v.resolve <= s.resolve)


def test_fast_lane_pays() -> None:
    assert fast_lane_pays(0.27, None) and fast_lane_pays(0.27, 0.5)
    assert not fast_lane_pays(0.63, 0.5) and not fast_lane_pays(1.0, None)


def test_learned_policy_routes_open_tasks_and_the_floor_comes_first(tmp_path: Path) -> None:
    policy = PolicyCache().load(write_learned(tmp_path, {"fast": -3.0, "strong": 2.0, "strong_after_fast_failed": 2.0})).policy
    router = Router(policy, repo="/src/app")
    open_task = router.classify(readme_change(), "fix the typo in the readme")
    assert open_task.lane == "strong" and open_task.plan is not None and open_task.plan.plan == "strong-only"
    assert open_task.as_dict()["plan"] == "strong-only"
    assert open_task.as_dict()["plan_detail"]["predicted"]["fast"] == pytest.approx(0.0474, abs=1e-4)
    floor = router.classify(ChangeSet(files=(ChangedFile("migrations/0002_add.py", "added", added=((1, "CREATE TABLE t (x int);"),)),)),
                            "add a table")
    assert floor.always_strong and floor.plan is None and floor.plan_name == "strong-only"
    asked = router.classify(readme_change(), "fix the typo", requested_lane="fast")
    assert asked.lane == "fast" and asked.plan is None and asked.plan_name == "cascade"
    (tmp_path / "cheap").mkdir()
    cheap_path = write_learned(tmp_path / "cheap", {"fast": 3.0, "strong": -2.0, "strong_after_fast_failed": -3.0})
    cheap = Router(PolicyCache().load(cheap_path).policy)
    assert cheap.classify(readme_change(), "fix the typo").plan_name == "fast-only"


def test_fixed_plan_ignores_the_predictions_but_shows_them(tmp_path: Path) -> None:
    path = write_learned(tmp_path, {"fast": -3.0, "strong": 2.0, "strong_after_fast_failed": 2.0}, "    fixed_plan: cascade\n")
    decision = Router(PolicyCache().load(path).policy).classify(readme_change(), "fix the typo")
    assert decision.plan_name == "cascade" and decision.lane == "fast"
    assert decision.plan is not None and decision.plan.prediction is not None and "fixed_plan" in decision.plan.reason


def test_a_missing_predictor_is_a_policy_error_at_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrouting:\n  learned:\n    predictor: nowhere.json\n    cost_weight: 0.3\n")
    with pytest.raises(PolicyError) as info:
        PolicyCache().load(policy)
    issue = info.value.issues[0]
    assert issue.file == str(policy) and issue.line == 4 and "nowhere.json" in issue.message


def test_the_fast_lane_is_skipped_when_it_cannot_pay() -> None:
    pays = Router(DEFAULT, economics=LaneEconomics(0.27, 0.4)).classify(readme_change(), "fix the typo")
    assert pays.lane == "fast" and pays.plan is None
    costly = Router(DEFAULT, economics=LaneEconomics(0.63, 0.45, "test")).classify(readme_change(), "fix the typo")
    assert costly.lane == "strong" and costly.plan_name == "strong-only"
    assert "the fast lane cannot pay here" in costly.lane_reason and "63%" in costly.lane_reason
    off = DEFAULT.model_copy(update={"routing": DEFAULT.routing.model_copy(update={"skip_fast_when_it_cannot_pay": False})})
    assert Router(off, economics=LaneEconomics(0.63, 0.45)).classify(readme_change(), "fix the typo").lane == "fast"


@pytest.mark.parametrize("plan", ["fast-only", "stop-after-fast"])
def test_fast_only_plans_stop_instead_of_escalating(plan: str) -> None:
    failed = AttemptOutcome(lane="fast", passed=False, failed_checks=("tests",), test_failures=2)
    assert next_route(failed, DEFAULT, 1, "cascade").action == "escalate"
    step = next_route(failed, DEFAULT, 1, plan)
    assert step.action == "stop" and step.reasons[-1] == f"plan:{plan}" and "failed_tests" in step.reasons
    passed = AttemptOutcome(lane="fast", passed=True, confidence=0.9, checks=("tests",))
    assert next_route(passed, DEFAULT, 1, plan).action == "accept"


def test_repository_policy_cannot_choose_a_learned_plan(tmp_path: Path) -> None:
    from route_agent.policy.strictness import restrict

    learned = PolicyCache().load(write_learned(tmp_path, {"fast": 0.0, "strong": 0.0, "strong_after_fast_failed": 0.0})).policy
    kept, lowered = restrict(DEFAULT, learned)
    assert kept.routing.learned is None and [lw.key for lw in lowered] == ["routing.learned"]


def test_routing_plan_sends_open_tasks_by_the_policy_and_a_repository_cannot_lower_it() -> None:
    from route_agent.policy.strictness import restrict

    strong = DEFAULT.model_copy(update={"routing": DEFAULT.routing.model_copy(update={"plan": "strong-only"})})
    fast = DEFAULT.model_copy(update={"routing": DEFAULT.routing.model_copy(update={"plan": "fast-only"})})
    assert Router(strong).classify(readme_change(), "fix the typo").lane == "strong"
    decision = Router(fast).classify(readme_change(), "fix the typo")
    assert decision.lane == "fast" and decision.plan_name == "fast-only"
    kept, lowered = restrict(DEFAULT, fast)
    assert kept.routing.plan == "auto" and [lw.key for lw in lowered] == ["routing.plan"]
    assert restrict(DEFAULT, strong) == (strong, [])


def test_hover_shows_the_plan_and_the_predictions(tmp_path: Path) -> None:
    from route_agent.lsp.risk_view import compute_hover

    policy = PolicyCache().load(write_learned(tmp_path, {"fast": -3.0, "strong": 2.0, "strong_after_fast_failed": 2.0})).policy
    decision = Router(policy, repo=str(tmp_path)).classify(readme_change(), "")
    text = compute_hover(decision, "README.md", 2)
    assert text is not None
    assert "Plan: `strong-only` (predicted: fast passes 5%, strong passes 88%, strong after a failed fast attempt 88%)" in text
    assert "Plan:" not in (compute_hover(Router(DEFAULT).classify(readme_change(), ""), "README.md", 2) or "")


def test_the_editor_snapshot_skips_a_fast_lane_that_cannot_pay(tmp_path: Path) -> None:
    """Hover and the status bar read the folder snapshot, planned like a run: the same prices apply."""
    from route_agent.lsp.risk_view import compute_hover
    from route_agent.lsp.state.folders import compute_snapshot
    from support.repos import git

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n\nteh typo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "readme")
    (repo / "README.md").write_text("# demo\n\nthe typo\n")
    costly = tmp_path / "costly.yaml"
    # no ledger yet, so no measured escalation rate: only the price decides, and a fast lane priced
    # like the strong one cannot pay for a single escalation
    costly.write_text("version: 1\nmodels:\n  fast:\n    price_per_mtok: {input: 3.0, output: 15.0}\n")
    cheap = tmp_path / "cheap.yaml"
    cheap.write_text("version: 1\n")
    ledger = str(tmp_path / "no-ledger-yet.sqlite3")
    lanes = {}
    for name, policy in (("cheap", cheap), ("costly", costly)):
        snapshot = compute_snapshot(repo, {}, PolicyCache(), policy, "auto", 1, ledger_location=ledger)
        hover = compute_hover(snapshot.decision, "README.md", 2)
        assert hover is not None
        lanes[name] = (snapshot.decision.lane, snapshot.decision.lane_reason, hover)
    assert lanes["cheap"][0] == "fast", lanes["cheap"]
    assert lanes["costly"][0] == "strong", lanes["costly"]
    assert "the fast lane cannot pay here" in lanes["costly"][1] and "100%" in lanes["costly"][1]
    assert "cannot pay" in lanes["costly"][2], lanes["costly"][2]
    assert not (tmp_path / "no-ledger-yet.sqlite3").exists(), "reading the economics must not create a ledger"
