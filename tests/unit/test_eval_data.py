"""Input validation: every error names the file (and line) and says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from route_agent.eval.data import EvalInputError, Prices, load_dataset, parse_prices, read_outcomes, read_tasks


def write_tasks(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


TASKS = [
    {"instance_id": "a", "repo": "o/r", "problem_statement": "fix pkg/mod.py", "patch": ""},
    {"instance_id": "b", "repo": "o/s", "problem_statement": "docs", "patch": ""},
]


def outcomes(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


GOOD = "instance_id,model,resolved,cost_usd\na,f,0,\na,s,1,\nb,f,1,\nb,s,1,\n"


def test_loads_and_uses_price_when_costs_are_empty(tmp_path: Path) -> None:
    ds = load_dataset(write_tasks(tmp_path / "t.jsonl", TASKS), outcomes(tmp_path / "o.csv", GOOD), "f", "s", Prices(1, 4))
    assert ds.fast_resolved == [0, 1] and ds.strong_resolved == [1, 1]
    assert ds.fast_cost == [1, 1] and ds.strong_cost == [4, 4] and ds.cost_source == "price"


def test_real_costs_are_used_when_present(tmp_path: Path) -> None:
    body = "instance_id,model,resolved,cost_usd\na,f,0,0.1\na,s,1,0.9\nb,f,1,0.2\nb,s,1,1.5\n"
    ds = load_dataset(write_tasks(tmp_path / "t.jsonl", TASKS), outcomes(tmp_path / "o.csv", body), "f", "s", Prices(1, 4))
    assert ds.cost_source == "outcomes" and ds.fast_cost == [0.1, 0.2] and ds.strong_cost == [0.9, 1.5]
    assert any("--price ignored" in n for n in ds.notes)


def test_price_required_when_costs_missing(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r"o\.csv: cost_usd is empty .* pass --price"):
        load_dataset(write_tasks(tmp_path / "t.jsonl", TASKS), outcomes(tmp_path / "o.csv", GOOD), "f", "s")


def test_mixed_costs_name_a_line(tmp_path: Path) -> None:
    body = "instance_id,model,resolved,cost_usd\na,f,0,0.1\na,s,1,\nb,f,1,0.2\nb,s,1,1.5\n"
    with pytest.raises(EvalInputError, match=r"o\.csv:3: cost_usd is empty here"):
        load_dataset(write_tasks(tmp_path / "t.jsonl", TASKS), outcomes(tmp_path / "o.csv", body), "f", "s", Prices(1, 4))


def test_missing_column(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r"o\.csv:1: missing column\(s\) cost_usd"):
        read_outcomes(outcomes(tmp_path / "o.csv", "instance_id,model,resolved\na,f,1\n"))


def test_resolved_must_be_0_or_1(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r"o\.csv:3: resolved must be 0 or 1, got 'yes'"):
        read_outcomes(outcomes(tmp_path / "o.csv", "instance_id,model,resolved,cost_usd\na,f,1,\na,s,yes,\n"))


def test_bad_cost(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r"o\.csv:2: cost_usd must be a number"):
        read_outcomes(outcomes(tmp_path / "o.csv", "instance_id,model,resolved,cost_usd\na,f,1,abc\n"))


def test_duplicate_outcome(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r"o\.csv:3: duplicate outcome for 'a' and model 'f' \(first on line 2\)"):
        read_outcomes(outcomes(tmp_path / "o.csv", "instance_id,model,resolved,cost_usd\na,f,1,\na,f,0,\n"))


def test_model_not_in_outcomes(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match=r"--strong model 'gpt' has no rows; models in the file: f, s"):
        load_dataset(write_tasks(tmp_path / "t.jsonl", TASKS), outcomes(tmp_path / "o.csv", GOOD), "f", "gpt", Prices(1, 4))


def test_tasks_without_outcomes(tmp_path: Path) -> None:
    rows = [*TASKS, {"instance_id": "c", "repo": "o/r", "problem_statement": "x"}]
    with pytest.raises(EvalInputError, match=r"1 task\(s\) from .*t\.jsonl have no outcome for model 'f': c"):
        load_dataset(write_tasks(tmp_path / "t.jsonl", rows), outcomes(tmp_path / "o.csv", GOOD), "f", "s", Prices(1, 4))


def test_bad_json_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(TASKS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(EvalInputError, match=r"t\.jsonl:2: bad JSON line"):
        read_tasks(path)


def test_task_missing_field(tmp_path: Path) -> None:
    path = write_tasks(tmp_path / "t.jsonl", [{"instance_id": "a", "problem_statement": "x"}])
    with pytest.raises(EvalInputError, match=r"t\.jsonl:1: missing or non-string field\(s\): repo"):
        read_tasks(path)


def test_gold_needs_patch(tmp_path: Path) -> None:
    path = write_tasks(tmp_path / "t.jsonl", [{"instance_id": "a", "repo": "o/r", "problem_statement": "x"}])
    with pytest.raises(EvalInputError, match=r"t\.jsonl:1: --signals gold needs a 'patch'"):
        read_tasks(path, need_patch=True)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="tasks file not found"):
        read_tasks(tmp_path / "nope.jsonl")
    with pytest.raises(EvalInputError, match="outcomes file not found"):
        read_outcomes(tmp_path / "nope.csv")


@pytest.mark.parametrize("text", ["fast=1", "fast=a,strong=2", "cheap=1,strong=2", "fast=1,strong=0", "fast=-1,strong=2"])
def test_bad_prices(text: str) -> None:
    with pytest.raises(EvalInputError, match="--price"):
        parse_prices(text)


def test_prices() -> None:
    assert parse_prices("fast=0.8,strong=3") == Prices(0.8, 3.0)
