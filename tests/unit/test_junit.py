"""JUnit XML reports: failures counted with their location; unsafe or broken XML refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from route_agent.verify.junit import MAX_REPORT_BYTES, ReportError, parse_junit_text, read_junit

PYTEST_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="2" skipped="1" tests="5">
<testcase classname="tests.test_sync" name="test_retry_releases" file="tests/test_sync.py" line="11">
  <failure message="assert 3 == 0">def test_retry_releases():
&gt;       assert pool.open == 0
E       assert 3 == 0

tests/test_sync.py:14: AssertionError</failure></testcase>
<testcase classname="tests.test_sync" name="test_backoff">
  <failure>tests/helpers.py:3: in make
    raise ValueError
tests/test_sync.py:27: in test_backoff
E   ValueError: boom</failure></testcase>
<testcase classname="tests.test_db" name="test_connect"><error message="fixture failed"/></testcase>
<testcase classname="tests.test_sync" name="test_ok" time="0.1"/>
<testcase classname="tests.test_sync" name="test_skip"><skipped message="later"/></testcase>
</testsuite></testsuites>
"""


def test_pytest_report() -> None:
    summary = parse_junit_text(PYTEST_REPORT, "r.xml")
    assert summary.tests == 5
    assert summary.skipped == 1
    assert [f.test_id for f in summary.failures] == [
        "tests.test_sync::test_retry_releases", "tests.test_sync::test_backoff", "tests.test_db::test_connect"]
    first, second, third = summary.failures
    assert (first.file, first.line, first.kind, first.message) == ("tests/test_sync.py", 11, "failure", "assert 3 == 0")
    assert (second.file, second.line) == ("tests/test_sync.py", 27)  # the last frame of the traceback
    assert second.message == "E   ValueError: boom"
    assert (third.kind, third.message, third.file) == ("error", "fixture failed", None)


@pytest.mark.parametrize(
    ("xml", "failures"),
    [
        pytest.param("<testsuite tests='1'><testcase name='a'/></testsuite>", 0, id="single-suite-pass"),
        pytest.param("<testsuite><testcase name='a'><failure/></testcase></testsuite>", 1, id="bare-failure"),
        pytest.param("<testsuites/>", 0, id="empty"),
        pytest.param("<testsuites><testsuite><testsuite><testcase name='n'><error/></testcase></testsuite></testsuite>"
                     "</testsuites>", 1, id="nested-suites"),
    ],
)
def test_report_shapes(xml: str, failures: int) -> None:
    assert len(parse_junit_text(xml).failures) == failures


def test_bare_failure_message_is_the_tag() -> None:
    failure = parse_junit_text("<testsuite><testcase name='a'><failure/></testcase></testsuite>").failures[0]
    assert failure.message == "failure"
    assert failure.test_id == "a"


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        pytest.param("<html><body>502</body></html>", "not a JUnit report", id="wrong-root"),
        pytest.param("<testsuite><testcase>", "not valid XML", id="truncated"),
        pytest.param("", "not valid XML", id="empty-file"),
        pytest.param('<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><testsuite>&b;</testsuite>', "unsafe XML",
                     id="entity-expansion"),
        pytest.param('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><testsuite>&e;</testsuite>', "unsafe XML",
                     id="external-entity"),
    ],
)
def test_bad_reports(xml: str, fragment: str) -> None:
    with pytest.raises(ReportError) as info:
        parse_junit_text(xml, "r.xml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("r.xml: ")


def test_read_junit_from_disk(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(PYTEST_REPORT)
    assert len(read_junit(report).failures) == 3


def test_missing_report(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not found"):
        read_junit(tmp_path / "none.xml")


def test_oversized_report_is_refused_without_reading(tmp_path: Path) -> None:
    report = tmp_path / "big.xml"
    with report.open("wb") as handle:
        handle.truncate(MAX_REPORT_BYTES + 1)  # sparse: no real disk use
    with pytest.raises(ReportError, match="limit"):
        read_junit(report)
