"""Toolchain detection (policy/toolchain.py) from a repository's files, and the weak-check rule
(a test check that ran no test is never a pass)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from route_agent.policy import PolicyCache
from route_agent.policy.models import Check
from route_agent.policy.toolchain import NO_CHECKS_NOTE, RepoFacts, detect_checks, read_repo_facts
from route_agent.verify.checks import ran_no_test


def facts(**files: str) -> RepoFacts:
    names = {name.replace("__", "/") for name in files}
    return RepoFacts(frozenset(names), {name: text for name, text in files.items() if "__" not in name})


def runs(found: RepoFacts) -> list[tuple[str, str]]:
    return [(c.name, " ".join(c.run)) for c in detect_checks(found).checks]


PYTEST = "python -m pytest -q -p no:cacheprovider --junitxml=.route-agent/junit.xml"


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        pytest.param(facts(**{"pyproject.toml": '[project]\nname = "x"\n'}), [("tests", PYTEST)], id="python-plain"),
        pytest.param(facts(**{"pyproject.toml": "[tool.ruff]\nline-length = 100\n[tool.mypy]\nstrict = true\n"}),
                     [("tests", PYTEST), ("lint", "python -m ruff check --output-format=concise ."), ("typecheck", "python -m mypy .")],
                     id="python-ruff-mypy"),
        pytest.param(facts(**{"pyproject.toml": '[tool.mypy]\nfiles = ["src"]\n', ".flake8": "[flake8]\n"}),
                     [("tests", PYTEST), ("lint", "python -m flake8 ."), ("typecheck", "python -m mypy")], id="python-flake8-mypy-files"),
        pytest.param(facts(**{"setup.cfg": "[flake8]\nmax-line-length = 99\n", "pyrightconfig.json": "{}"}),
                     [("tests", PYTEST), ("lint", "python -m flake8 ."), ("typecheck", "pyright")], id="python-setup-cfg-pyright"),
        pytest.param(facts(**{"tests__test_app.py": ""}), [("tests", PYTEST)], id="python-only-a-tests-folder"),
        pytest.param(facts(**{"package.json": json.dumps({"scripts": {"test": "jest", "lint": "eslint .", "typecheck": "tsc --noEmit"}}),
                              "pnpm-lock.yaml": ""}),
                     [("tests", "pnpm test"), ("lint", "pnpm run lint"), ("typecheck", "pnpm run typecheck")], id="node-pnpm"),
        pytest.param(facts(**{"package.json": json.dumps({"scripts": {"test": "vitest run"}}), "yarn.lock": ""}),
                     [("tests", "yarn test")], id="node-yarn"),
        pytest.param(facts(**{"package.json": json.dumps({"scripts": {"lint": "eslint ."}}), "package-lock.json": "{}"}),
                     [("lint", "npm run lint")], id="node-npm-lint-only"),
        pytest.param(facts(**{"package.json": json.dumps({"packageManager": "pnpm@9.1.0", "scripts": {"test": "node --test"}})}),
                     [("tests", "pnpm test")], id="node-package-manager-field"),
        pytest.param(facts(**{"go.mod": "module x\n"}), [("tests", "go test -json ./..."), ("vet", "go vet ./...")], id="go"),
        pytest.param(facts(**{"Cargo.toml": "[package]\n"}),
                     [("tests", "cargo test --quiet"), ("clippy", "cargo clippy --quiet -- -D warnings")], id="rust"),
        pytest.param(facts(**{"requirements.txt": "", "package.json": json.dumps({"scripts": {"test": "jest"}})}),
                     [("tests", PYTEST), ("node-tests", "npm test")], id="python-and-node-names-kept-apart"),
    ],
)
def test_detected_checks(found: RepoFacts, expected: list[tuple[str, str]]) -> None:
    assert runs(found) == expected


def test_npm_placeholder_test_script_is_no_test_script() -> None:
    placeholder = 'echo "Error: no test specified" && exit 1'
    detected = detect_checks(facts(**{"package.json": json.dumps({"scripts": {"test": placeholder}})}))
    assert detected.checks == ()
    assert detected.reasons == ("node (npm) found, but it has no check to run", NO_CHECKS_NOTE)


def test_nothing_found_says_what_that_means() -> None:
    detected = detect_checks(facts(**{"README.md": "# hi\n", "Makefile": "all:\n"}))
    assert detected.checks == () and detected.toolchains == ()
    assert detected.reasons == (NO_CHECKS_NOTE,)
    assert "escalates to the strong lane" in NO_CHECKS_NOTE


def test_unreadable_package_json_still_detects_node_without_scripts() -> None:
    detected = detect_checks(facts(**{"package.json": "{not json"}))
    assert detected.toolchains == ("node (npm)",) and detected.checks == ()


def test_read_repo_facts_reads_top_level_and_tests_folder(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("")
    (tmp_path / "package.json").write_text('{"scripts": {"test": "node --test"}}')
    (tmp_path / "yarn.lock").write_text("")
    found = read_repo_facts(tmp_path)
    assert {"tests/test_a.py", "package.json", "yarn.lock"} <= found.names
    assert found.files["package.json"].startswith("{")
    assert [c.run for c in detect_checks(found).checks] == [PYTEST.split(), ["yarn", "test"]]


def test_detected_checks_are_the_default_verification_until_a_policy_sets_one(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module x\n")
    cache = PolicyCache()
    loaded = cache.for_workspace(tmp_path)
    assert [c.name for c in loaded.policy.verification.fast] == ["tests", "vet"]
    assert [c.timeout_s for c in loaded.policy.verification.strong] == [600.0, 240.0]
    assert loaded.sources[1] == "<detected checks: go>"
    (tmp_path / ".route-agent").mkdir()
    (tmp_path / ".route-agent" / "policy.yaml").write_text("verification:\n  fast: [{name: mine, run: [make, check]}]\n")
    loaded = cache.for_workspace(tmp_path)
    assert [c.name for c in loaded.policy.verification.fast] == ["mine"]  # the repository's policy wins
    assert [c.name for c in loaded.policy.verification.strong] == ["tests", "vet"]  # ... only where it speaks


def test_detection_is_reread_when_a_probed_file_changes(tmp_path: Path) -> None:
    cache = PolicyCache()
    assert cache.for_workspace(tmp_path).policy.verification.fast == []
    (tmp_path / "Cargo.toml").write_text("[package]\n")
    assert [c.name for c in cache.for_workspace(tmp_path).policy.verification.fast] == ["tests", "clippy"]


def check(*run: str) -> Check:
    return Check(name="tests", kind="tests", run=list(run))


@pytest.mark.parametrize(
    ("the_check", "exit_code", "output", "weak"),
    [
        pytest.param(check("python", "-m", "pytest"), 5, "no tests ran in 0.01s", True, id="pytest-exit-5"),
        pytest.param(check("python", "-m", "pytest"), 0, "3 passed in 0.1s", False, id="pytest-passed"),
        pytest.param(check("python", "-m", "pytest"), 1, "1 failed", False, id="pytest-failed"),
        pytest.param(check("go", "test", "-json", "./..."), 0,
                     '{"Action":"output","Package":"x","Output":"?   \\tx\\t[no test files]\\n"}\n{"Action":"skip","Package":"x"}', True,
                     id="go-json-no-test-files"),
        pytest.param(check("go", "test", "-json", "./..."), 0, '{"Action":"run","Test":"TestAdd"}\n{"Action":"pass"}', False,
                     id="go-json-ran"),
        pytest.param(check("go", "test", "./..."), 0, "?   \tx\t[no test files]\n", True, id="go-no-test-files"),
        pytest.param(check("cargo", "test"), 0, "running 0 tests\n\nrunning 0 tests\n", True, id="cargo-zero"),
        pytest.param(check("cargo", "test"), 0, "running 0 tests\n\nrunning 2 tests\n..\n", False, id="cargo-ran"),
        pytest.param(check("npm", "test"), 0, "ℹ tests 0\nℹ pass 0\n", True, id="node-test-zero"),
        pytest.param(check("npm", "test"), 0, "ℹ tests 4\nℹ pass 4\n", False, id="node-test-ran"),
        pytest.param(check("npm", "test"), 0, "No tests found, exiting with code 0", True, id="jest-pass-with-no-tests"),
        pytest.param(Check(name="lint", kind="lint", run=["npm", "run", "lint"]), 0, "no tests found", False, id="not-a-test-check"),
    ],
)
def test_a_check_that_ran_no_test_is_weak(the_check: Check, exit_code: int, output: str, weak: bool) -> None:
    assert ran_no_test(the_check, exit_code, output) is weak


GO_TEST_JSON_FAIL = "\n".join([
    '{"Action":"run","Package":"example.com/calc/sub","Test":"TestAdd"}',
    '{"Action":"output","Package":"example.com/calc/sub","Test":"TestAdd","Output":"=== RUN   TestAdd\\n"}',
    '{"Action":"output","Package":"example.com/calc/sub","Test":"TestAdd","Output":"    add_test.go:7: Add(2, 3) = -1\\n"}',
    '{"Action":"output","Package":"example.com/calc/sub","Test":"TestAdd","Output":"--- FAIL: TestAdd (0.00s)\\n"}',
    '{"Action":"fail","Package":"example.com/calc/sub","Test":"TestAdd","Elapsed":0}',
    '{"Action":"output","Package":"example.com/calc/sub","Output":"FAIL\\texample.com/calc/sub\\t0.005s\\n"}',
    '{"Action":"fail","Package":"example.com/calc/sub","Elapsed":0.005}',
    "# example.com/calc/other",
    "other/x.go:3:9: undefined: y",
])


def test_go_test_json_failures_are_findings_at_the_test_line(tmp_path: Path) -> None:
    from route_agent.verify.findings import from_go_test_json

    (tmp_path / "go.mod").write_text("module example.com/calc\n\ngo 1.19\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "add_test.go").write_text("package sub\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.go").write_text("package other\n")
    found = from_go_test_json(GO_TEST_JSON_FAIL, "tests", tmp_path)
    assert [(f.message, f.path, f.line, f.rule) for f in found] == [
        ("undefined: y", "other/x.go", 3, None),
        ("TestAdd: Add(2, 3) = -1", "sub/add_test.go", 7, "failure"),
    ]


def test_eslint_stylish_output_becomes_findings(tmp_path: Path) -> None:
    from route_agent.verify.findings import from_problem_matcher

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "add.js").write_text("export const add = (a, b) => a + b;\n")
    output = "\n".join([
        "> calc@1.0.0 lint", "> eslint .", "",
        f"{tmp_path}/src/add.js",
        "  1:14  error    'unused' is assigned a value but never used  no-unused-vars",
        "  3:1   warning  Unexpected console statement                 no-console",
        "",
        "✖ 2 problems (1 error, 1 warning)",
    ])
    found = from_problem_matcher(output, "lint", tmp_path)
    assert [(f.path, f.line, f.column, f.severity, f.rule, f.message) for f in found] == [
        ("src/add.js", 1, 14, "error", "no-unused-vars", "'unused' is assigned a value but never used"),
        ("src/add.js", 3, 1, "warning", "no-console", "Unexpected console statement"),
    ]


def test_odd_lines_in_linter_output_are_skipped(tmp_path: Path) -> None:
    from route_agent.verify.findings import from_problem_matcher

    odd = "\n".join(["nul\x00byte", "x" * 5000, "../../etc/passwd", "  1:1  error  no file above  rule"])
    assert from_problem_matcher(odd, "lint", tmp_path) == []
