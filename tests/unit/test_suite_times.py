"""scripts/suite_times.py on a junit file written by a real pytest run of a small tree of tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from defusedxml import ElementTree

from support.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "suite_times.py"


def run_pytest(tree: Path, junit: Path) -> None:
    """Two folders, one nested; a class, a failure and a skip, so every column has something to count."""
    (tree / "pytest.ini").write_text("[pytest]\n", "utf-8")  # rootdir: classnames are relative to `tree`
    (tree / "tests" / "alpha").mkdir(parents=True)
    (tree / "tests" / "beta" / "deep").mkdir(parents=True)
    (tree / "tests" / "alpha" / "test_one.py").write_text(
        "import pytest\n\n"
        "def test_passes():\n    assert sum(range(10)) == 45\n\n"
        "@pytest.mark.skip(reason='shows in the skipped column')\ndef test_skipped():\n    pass\n", "utf-8")
    (tree / "tests" / "beta" / "deep" / "test_two.py").write_text(
        "class TestGroup:\n"
        "    def test_a(self):\n        assert 'a'.upper() == 'A'\n\n"
        "    def test_b(self):\n        assert [1, 2] == [2, 1]\n\n"
        "def test_c():\n    assert len('abc') == 3\n", "utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", "tests"],
                          cwd=tree, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the one failing test
    assert junit.is_file()


def seconds_by_classname_prefix(junit: Path, prefix: str) -> float:
    top = ElementTree.parse(junit).getroot()
    assert top is not None
    return sum(float(c.get("time") or 0) for c in top.iter("testcase") if c.get("classname", "").startswith(prefix))


def test_prints_tests_failures_skips_and_seconds_per_folder(tmp_path: Path) -> None:
    tree, junit = tmp_path / "project", tmp_path / "junit.xml"
    tree.mkdir()
    run_pytest(tree, junit)

    proc = subprocess.run([sys.executable, str(SCRIPT), str(junit), "--root", str(tree)], capture_output=True, text=True,
                          timeout=60, check=False)

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["folder", "tests", "failed", "skipped", "seconds", "share"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if not line.startswith("session")}
    assert set(rows) == {"tests/alpha", "tests/beta/deep", "total"}
    assert rows["tests/alpha"][:3] == ["2", "0", "1"]
    assert rows["tests/beta/deep"][:3] == ["3", "1", "0"]
    assert rows["total"][:3] == ["5", "1", "1"]
    assert float(rows["tests/alpha"][3]) == round(seconds_by_classname_prefix(junit, "tests.alpha."), 1)
    assert float(rows["tests/beta/deep"][3]) == round(seconds_by_classname_prefix(junit, "tests.beta.deep."), 1)
    assert rows["total"][4] == "100.0%"
    assert lines[-1].startswith("session wall time ")


def test_an_unreadable_report_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    broken = tmp_path / "junit.xml"
    broken.write_text("<testsuites><testsuite", "utf-8")  # pytest killed while writing it

    proc = subprocess.run([sys.executable, str(SCRIPT), str(broken)], capture_output=True, text=True, timeout=60, check=False)

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"suite_times: cannot read {broken}: ")
