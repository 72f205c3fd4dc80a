"""Tamper checks: ways a patch can make verification pass without fixing anything.

No model is needed: each rule reads the patch's added and removed lines and paths. Every hit is a
finding of kind `tamper`, which forces escalation (routing.next_route). Rules:
tests deleted or renamed away; new skip/xfail/only markers; assertions removed or weakened (`assert
True`, an expected value changed); edits to CI config, test configuration (conftest.py, pytest.ini,
tox.ini, setup.cfg, [tool.pytest], jest/vitest config), the policy or editor settings; new
suppressions (noqa, type: ignore, eslint-disable, ts-ignore, nolint, pragma: no cover).
Snapshot-only: when the only test files a patch touches are snapshots, the checks are weak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from route_agent.signals.changeset import ChangedFile, ChangeSet
from route_agent.signals.paths import PathMatcher
from route_agent.verify.findings import Finding

_TEST_DEF = re.compile(
    r"^\s*(?:async\s+)?def\s+(test\w*)|^\s*(?:it|test|describe)\s*\(\s*['\"`]([^'\"`]+)|^\s*func\s+(Test\w+)\s*\(|^\s*(?:@Test\b)"
)
_SKIP = re.compile(
    r"@pytest\.mark\.(skip|skipif|xfail)\b|\bpytest\.(skip|xfail)\s*\(|@unittest\.(skip|skipIf|skipUnless|expectedFailure)\b"
    r"|\b(it|test|describe|context)\.(only|skip|todo)\s*\(|\b(xit|xdescribe|fit|fdescribe|xtest)\s*\(|@Disabled\b|@Ignore\b|\bt\.Skip(Now|f)?\s*\("
    r"|#\[ignore\]|\bself\.skipTest\s*\("
)
_ASSERT = re.compile(r"\bassert\w*\b|\bexpect\s*\(|\bshould\b|\bassertThat\b|\brequire\.\w+\(|\bt\.(Error|Fatal)f?\(")
_TRIVIAL_ASSERT = re.compile(
    r"^\s*assert\s+(True|1|not\s+False|\"[^\"]*\"|'[^']*')\s*(,.*)?$|^\s*self\.assertTrue\(\s*True\s*\)|expect\(\s*true\s*\)\.toBe\(\s*true\s*\)"
    r"|^\s*assert\s+(?P<same>\w+)\s*==\s*(?P=same)\s*$"
)
_ASSERT_EQ = re.compile(
    r"^\s*assert\s+(?P<lhs>.+?)\s*(==|!=|is)\s*(?P<rhs>.+?)\s*$|(?P<call>assert(Equal|Equals|_eq)?\w*)\(\s*(?P<a>[^,]+),\s*(?P<b>.+)\)\s*$"
)
_SUPPRESS = re.compile(
    r"#\s*noqa\b|#\s*type:\s*ignore|eslint-disable|@ts-ignore|@ts-expect-error|@ts-nocheck|//\s*nolint|#\s*pragma:\s*no\s*cover|#\s*nosec\b|#\s*pylint:\s*disable|\bNOLINT\b|@SuppressWarnings"
)

TEST_CONFIG_NAMES = {
    "conftest.py",
    "pytest.ini",
    "tox.ini",
    "noxfile.py",
    ".coveragerc",
    "setup.cfg",
    "jest.config.js",
    "jest.config.ts",
    "jest.config.mjs",
    "jest.config.cjs",
    "jest.config.json",
    "vitest.config.ts",
    "vitest.config.js",
    "vitest.config.mts",
    "vitest.workspace.ts",
    "karma.conf.js",
    ".mocharc.yml",
    ".mocharc.json",
    "phpunit.xml",
    "phpunit.xml.dist",
}
POLICY_PATHS = (".route-agent/", ".route-agent.yaml")
EDITOR_PATHS = (".vscode/", ".idea/", ".nvim.lua", ".exrc")


@dataclass(frozen=True)
class TamperReport:
    findings: tuple[Finding, ...]
    snapshot_only: bool

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.rule or f.message for f in self.findings)


def _is_test(matcher: PathMatcher, path: str) -> bool:
    return any(m.path_class == "tests" for m in matcher.classify(path))


def _is_snapshot(matcher: PathMatcher, path: str) -> bool:
    return any(m.path_class == "snapshots" for m in matcher.classify(path))


def _finding(rule: str, message: str, path: str | None = None, line: int | None = None) -> Finding:
    return Finding("tamper", message, "error", path, line, rule=rule, kind="tamper")


def check_tamper(patch: ChangeSet, matcher: PathMatcher) -> TamperReport:  # noqa: PLR0912 (one branch per tamper rule)
    findings: list[Finding] = []
    touched_tests: list[str] = []
    touched_snapshots: list[str] = []
    touched_code = False
    added_test_names: set[str] = set()
    for f in patch.files:
        for _, text in f.added:
            match = _TEST_DEF.match(text)
            if match:
                added_test_names.add(next((g for g in match.groups() if g), "@Test"))
    for f in patch.files:
        path = f.path
        name = PurePosixPath(path).name
        is_snapshot = _is_snapshot(matcher, path)
        is_test = _is_test(matcher, path) or is_snapshot
        if is_snapshot:
            touched_snapshots.append(path)
        elif is_test:
            touched_tests.append(path)
        else:
            touched_code = True
        classes = {m.path_class for m in matcher.classify(path)}
        if "ci_config" in classes:
            findings.append(_finding("ci-config", f"the patch edits CI configuration {path}", path))
        if name in TEST_CONFIG_NAMES or _touches_pytest_config(f):
            findings.append(_finding("test-config", f"the patch edits test configuration {path}", path))
        if path.startswith(POLICY_PATHS) or path == ".route-agent.yaml":
            findings.append(_finding("policy", f"the patch edits the routing policy or its verification commands ({path})", path))
        if path.startswith(EDITOR_PATHS):
            findings.append(_finding("editor-config", f"the patch edits editor configuration {path}", path))
        if is_test and not is_snapshot:
            findings.extend(_test_file_findings(f, added_test_names))
        for number, text in f.added:
            if _SUPPRESS.search(text):
                findings.append(_finding("suppression", f"new suppression comment: {text.strip()[:100]}", path, number))
            if _SKIP.search(text):
                findings.append(_finding("skip-marker", f"new skip/xfail/only marker: {text.strip()[:100]}", path, number))
    snapshot_only = bool(touched_snapshots) and not touched_tests and touched_code
    return TamperReport(tuple(findings), snapshot_only)


def _touches_pytest_config(f: ChangedFile) -> bool:
    name = PurePosixPath(f.path).name
    if name not in {"pyproject.toml", "package.json"}:
        return False
    lines = [t for _, t in (*f.added, *f.removed)]
    keys = ("[tool.pytest", "addopts", "testpaths", "python_files", "filterwarnings", "[tool.coverage", '"jest"', '"vitest"', '"test":')
    return any(k in t for t in lines for k in keys)


def _test_file_findings(f: ChangedFile, added_test_names: set[str]) -> list[Finding]:
    out: list[Finding] = []
    path = f.path
    if f.status == "deleted":
        out.append(_finding("test-deleted", f"the patch deletes the test file {path}", path))
        return out
    if f.status == "renamed" and f.old_path:
        out.append(_finding("test-renamed", f"the patch renames the test file {f.old_path} to {path}", path))
    for number, text in f.removed:
        match = _TEST_DEF.match(text)
        if match:
            name = next((g for g in match.groups() if g), "@Test")
            if name not in added_test_names:
                out.append(_finding("test-removed", f"the patch removes the test {name}", path, number))
    removed_asserts = [t for _, t in f.removed if _ASSERT.search(t)]
    added_asserts = [(n, t) for n, t in f.added if _ASSERT.search(t)]
    for number, text in f.added:
        if _TRIVIAL_ASSERT.search(text):
            out.append(_finding("trivial-assert", f"a trivially true assertion: {text.strip()[:100]}", path, number))
    if len(removed_asserts) > len(added_asserts):
        out.append(
            _finding(
                "assert-removed",
                f"the patch removes {len(removed_asserts) - len(added_asserts)} assertion(s) from {path}",
                path,
                f.removed[0][0] if f.removed else None,
            )
        )
    old_expectations = {_lhs(t): _rhs(t) for t in removed_asserts if _lhs(t)}
    for number, text in added_asserts:
        lhs = _lhs(text)
        if lhs and lhs in old_expectations and old_expectations[lhs] != _rhs(text):
            out.append(
                _finding(
                    "expected-changed", f"the expected value of {lhs} changed from {old_expectations[lhs]} to {_rhs(text)}", path, number
                )
            )
    return out


def _lhs(text: str) -> str | None:
    match = _ASSERT_EQ.search(text)
    if not match:
        return None
    return (match.group("lhs") or match.group("a") or "").strip() or None


def _rhs(text: str) -> str | None:
    match = _ASSERT_EQ.search(text)
    if not match:
        return None
    return (match.group("rhs") or match.group("b") or "").strip() or None
