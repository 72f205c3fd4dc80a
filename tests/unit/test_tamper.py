"""Tamper checks and re-scoring of the actual diff: each rule fires on its case and not on honest patches."""

from __future__ import annotations

import pytest

from route_agent.policy import PolicyCache
from route_agent.routing import Router
from route_agent.signals.changeset import ChangedFile, ChangeSet
from route_agent.signals.diffparse import change_set_from_diff
from route_agent.verify.rescore import rescore_patch
from route_agent.verify.tamper import check_tamper


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(PolicyCache().load().policy)


def modified(path: str, added: list[str] = (), removed: list[str] = (), **kw: object) -> ChangedFile:  # type: ignore[assignment]
    return ChangedFile(path=path, status=kw.pop("status", "modified"),  # type: ignore[arg-type]
                       added=tuple(enumerate(added, start=1)), removed=tuple(enumerate(removed, start=1)), **kw)  # type: ignore[arg-type]


CASES = [
    pytest.param([ChangedFile("tests/test_sync.py", "deleted", removed=((1, "def test_retry():"), (2, "    assert x")))], "test-deleted", id="test-file-deleted"),
    pytest.param([ChangedFile("tests/test_new_name.py", "renamed", old_path="tests/test_sync.py")], "test-renamed", id="test-file-renamed"),
    pytest.param([modified("tests/test_sync.py", removed=["def test_retry_leak():", "    assert leak() == 0"])], "test-removed", id="test-function-removed"),
    pytest.param([modified("tests/test_sync.py", added=["@pytest.mark.skip(reason='flaky')"])], "skip-marker", id="pytest-skip"),
    pytest.param([modified("tests/test_sync.py", added=["@pytest.mark.xfail"])], "skip-marker", id="pytest-xfail"),
    pytest.param([modified("web/app.test.ts", added=["it.only('works', () => {"])], "skip-marker", id="jest-only"),
    pytest.param([modified("web/app.test.ts", added=["describe.skip('suite', () => {"])], "skip-marker", id="jest-skip"),
    pytest.param([modified("tests/test_sync.py", added=["    assert True"], removed=["    assert leak() == 0"])], "trivial-assert", id="assert-true"),
    pytest.param([modified("tests/test_sync.py", added=["    x = leak()"], removed=["    assert leak() == 0"])], "assert-removed", id="assert-removed"),
    pytest.param([modified("tests/test_sync.py", added=["    assert leak() == 3"], removed=["    assert leak() == 0"])], "expected-changed", id="expected-changed"),
    pytest.param([modified(".github/workflows/ci.yml", added=["      - run: true"])], "ci-config", id="ci-config"),
    pytest.param([modified("conftest.py", added=["collect_ignore = ['tests']"])], "test-config", id="conftest"),
    pytest.param([modified("pytest.ini", added=["addopts = -k 'not slow'"])], "test-config", id="pytest-ini"),
    pytest.param([modified("pyproject.toml", added=['addopts = "--deselect tests/test_sync.py"'])], "test-config", id="tool-pytest"),
    pytest.param([modified("vitest.config.ts", added=["exclude: ['**']"])], "test-config", id="vitest-config"),
    pytest.param([modified(".route-agent/policy.yaml", added=["  fast_max_score: 99"])], "policy", id="policy-edit"),
    pytest.param([modified(".vscode/settings.json", added=['"x": 1'])], "editor-config", id="vscode-settings"),
    pytest.param([modified("app/sync.py", added=["import os  # noqa: F401"])], "suppression", id="noqa"),
    pytest.param([modified("app/sync.py", added=["x: int = 'a'  # type: ignore"])], "suppression", id="type-ignore"),
    pytest.param([modified("web/app.ts", added=["// eslint-disable-next-line"])], "suppression", id="eslint-disable"),
    pytest.param([modified("web/app.ts", added=["// @ts-ignore"])], "suppression", id="ts-ignore"),
]


@pytest.mark.parametrize(("files", "rule"), CASES)
def test_tamper_rule_fires(router: Router, files: list[ChangedFile], rule: str) -> None:
    report = check_tamper(ChangeSet(tuple(files)), router.matcher)
    assert rule in {f.rule for f in report.findings}
    assert all(f.kind == "tamper" for f in report.findings)


@pytest.mark.parametrize(
    "files",
    [
        pytest.param([modified("app/sync.py", added=["    pool.release(conn)"], removed=["    pass"])], id="code-fix"),
        pytest.param([modified("tests/test_sync.py", added=["def test_release():", "    assert pool.size == 0"])], id="new-test"),
        pytest.param([modified("tests/test_sync.py", added=["    assert leak() == 0", "    assert pool.size == 0"],
                               removed=["    assert leak() == 0"])], id="assert-added"),
        pytest.param([modified("README.md", added=["Fix the retry leak."])], id="docs"),
    ],
)
def test_honest_patches_are_clean(router: Router, files: list[ChangedFile]) -> None:
    report = check_tamper(ChangeSet(tuple(files)), router.matcher)
    assert report.findings == ()
    assert not report.snapshot_only


def test_snapshot_only(router: Router) -> None:
    files = [modified("app/render.py", added=["return html"]), modified("tests/__snapshots__/render.ambr", added=["<p>new</p>"])]
    assert check_tamper(ChangeSet(tuple(files)), router.matcher).snapshot_only
    files.append(modified("tests/test_render.py", added=["    assert render() == '<p>new</p>'"]))
    assert not check_tamper(ChangeSet(tuple(files)), router.matcher).snapshot_only


@pytest.mark.parametrize(
    ("diff", "condition"),
    [
        pytest.param("diff --git a/services/identity/tokens.py b/services/identity/tokens.py\n--- a/services/identity/tokens.py\n"
                     "+++ b/services/identity/tokens.py\n@@ -1,1 +1,2 @@\n x = 1\n+payload = jwt.decode(token, key, algorithms=['none'])\n",
                     "auth_code", id="auth"),
        pytest.param("diff --git a/migrations/0002_x.py b/migrations/0002_x.py\nnew file mode 100644\n--- /dev/null\n+++ b/migrations/0002_x.py\n"
                     "@@ -0,0 +1,1 @@\n+ops = []\n", "schema_change", id="migration"),
        pytest.param("diff --git a/.github/workflows/ci.yml b/.github/workflows/ci.yml\n--- a/.github/workflows/ci.yml\n+++ b/.github/workflows/ci.yml\n"
                     "@@ -1,1 +1,1 @@\n-on: push\n+on: pull_request\n", "ci_config", id="ci"),
        pytest.param("diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n", "file_mode_change", id="exec-bit"),
        pytest.param("diff --git a/link b/link\nnew file mode 120000\n--- /dev/null\n+++ b/link\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n",
                     "file_mode_change", id="symlink"),
    ],
)
def test_fast_patch_touching_more_than_the_task_is_scope_creep(router: Router, diff: str, condition: str) -> None:
    original = router.classify(ChangeSet((modified("app/sync.py", added=["x = 2"]),)), "fix retry leak in sync worker")
    assert original.lane == "fast"
    report = rescore_patch(router, original, change_set_from_diff(diff))
    assert condition in report.new_conditions
    assert report.findings and all(f.kind == "scope" for f in report.findings)


def test_patch_within_the_task_is_not_scope_creep(router: Router) -> None:
    original = router.classify(ChangeSet((modified("app/sync.py", added=["x = 2"]),)), "fix retry leak")
    diff = "diff --git a/app/sync.py b/app/sync.py\n--- a/app/sync.py\n+++ b/app/sync.py\n@@ -1,1 +1,1 @@\n-x = 2\n+x = 3\n"
    assert rescore_patch(router, original, change_set_from_diff(diff)).new_conditions == ()
