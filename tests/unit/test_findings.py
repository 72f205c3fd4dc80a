"""Report parsers: SARIF, problem-matcher formats (mypy, ruff concise, eslint unix, tsc), exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from route_agent.verify.findings import from_exit_code, from_problem_matcher, from_sarif, to_repo_path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("x\n")
    (tmp_path / "web.ts").write_text("x\n")
    return tmp_path


@pytest.mark.parametrize(
    ("line", "path", "lineno", "col", "severity"),
    [
        pytest.param("src/app.py:12: error: Incompatible types in assignment  [assignment]", "src/app.py", 12, None, "error", id="mypy"),
        pytest.param("src/app.py:3:5: F401 [*] `os` imported but unused", "src/app.py", 3, 5, "error", id="ruff-concise"),
        pytest.param("web.ts:10:2: Unexpected var, use let or const instead. [Error/no-var]", "web.ts", 10, 2, "error", id="eslint-unix"),
        pytest.param("web.ts(7,14): error TS2322: Type 'string' is not assignable to type 'number'.", "web.ts", 7, 14, "error", id="tsc"),
        pytest.param("src/app.py:4: note: Revealed type is int", "src/app.py", 4, None, "info", id="mypy-note"),
        pytest.param("src/app.py:9:1: warning: shadowed", "src/app.py", 9, 1, "warning", id="gcc-warning"),
    ],
)
def test_problem_matcher_formats(tree: Path, line: str, path: str, lineno: int, col: int | None, severity: str) -> None:
    findings = from_problem_matcher(line + "\n", "lint", tree)
    assert len(findings) == 1
    f = findings[0]
    assert (f.path, f.line, f.column, f.severity, f.check) == (path, lineno, col, severity, "lint")


def test_problem_matcher_ignores_lines_that_are_not_repository_files(tree: Path) -> None:
    out = "https://example.com:443: error: nope\nFound 2 errors\nmissing.py:1:1: E1 thing\n"
    assert from_problem_matcher(out, "lint", tree) == []


def test_absolute_worktree_paths_map_back(tree: Path) -> None:
    assert to_repo_path(str(tree / "src" / "app.py"), tree) == "src/app.py"
    assert to_repo_path("/etc/passwd", tree) is None
    assert to_repo_path("../outside.py", tree) is None


def test_sarif(tree: Path) -> None:
    sarif = {"version": "2.1.0", "runs": [{"results": [
        {"ruleId": "E501", "level": "error", "message": {"text": "line too long"},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/app.py"}, "region": {"startLine": 8, "startColumn": 3}}}]},
        {"ruleId": "W1", "level": "note", "message": {"text": "fyi"}},
    ]}]}
    findings = from_sarif(json.dumps(sarif), "lint", tree)
    assert [(f.path, f.line, f.column, f.severity, f.rule) for f in findings] == [
        ("src/app.py", 8, 3, "error", "E501"), (None, None, None, "info", "W1")]


@pytest.mark.parametrize("text", [pytest.param("not json", id="garbage"), pytest.param("{}", id="no-runs")])
def test_sarif_errors_are_findings(tree: Path, text: str) -> None:
    findings = from_sarif(text, "lint", tree)
    assert len(findings) == 1 and findings[0].severity == "error"


def test_exit_code_finding_keeps_tail_and_names_timeout() -> None:
    assert "exited with 3" in from_exit_code("build", 3, "boom", False).message
    timeout = from_exit_code("build", None, "", True)
    assert timeout.rule == "timeout" and "never a pass" in timeout.message
