"""JUnit XML reports: failing test cases, with the file and line when the report gives them.

Parsed with defusedxml: a report is tool output from an untrusted repository (entity expansion and
external entities are refused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

MAX_REPORT_BYTES = 32 * 1024 * 1024


class ReportError(Exception):
    """A report that cannot be read or parsed; the message names the file."""


@dataclass(frozen=True)
class TestCaseFailure:
    name: str
    classname: str
    kind: str
    """failure or error"""
    message: str
    file: str | None = None
    line: int | None = None

    @property
    def test_id(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name


@dataclass(frozen=True)
class JUnitSummary:
    tests: int
    failures: tuple[TestCaseFailure, ...]
    skipped: int


_TRACE_LOCATION = re.compile(r"^(?P<file>[^\s:][^:\n]*\.\w+):(?P<line>\d+):", re.MULTILINE)


def parse_junit_text(text: str | bytes, source: str = "report") -> JUnitSummary:
    try:
        root = SafeET.fromstring(text)
    except DefusedXmlException as exc:
        raise ReportError(f"{source}: refused unsafe XML ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        raise ReportError(f"{source}: not valid XML ({exc})") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"{source}: not a JUnit report (root element <{root.tag}>)")
    tests = 0
    skipped = 0
    failures: list[TestCaseFailure] = []
    for case in root.iter("testcase"):
        tests += 1
        for child in case:
            if child.tag in ("failure", "error"):
                failures.append(_failure(case, child))
                break
            if child.tag == "skipped":
                skipped += 1
                break
    return JUnitSummary(tests=tests, failures=tuple(failures), skipped=skipped)


def _failure(case: Element, child: Element) -> TestCaseFailure:
    file = case.get("file")
    line_raw = case.get("line")
    line = int(line_raw) if line_raw and line_raw.isdigit() else None
    body = (child.text or "")[-4000:]
    if file is None or line is None:
        # pytest puts the location in the traceback text: take the last frame in a test file.
        frames = list(_TRACE_LOCATION.finditer(body))
        if frames:
            last = frames[-1]
            file = file or last.group("file")
            line = line or int(last.group("line"))
    message = child.get("message") or ""
    if not message.strip():
        # No message attribute: the last line of the failure text (pytest's "E   ..." line) says most.
        tail = body.strip().splitlines()
        message = tail[-1].strip() if tail else child.tag
    return TestCaseFailure(
        name=case.get("name", "?"),
        classname=case.get("classname", ""),
        kind=child.tag,
        message=message[:500],
        file=file,
        line=line,
    )


def read_junit(path: Path) -> JUnitSummary:
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            raise ReportError(f"{path}: report is {size} bytes; the limit is {MAX_REPORT_BYTES}")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReportError(f"{path}: test report not found") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read test report: {exc.strerror}") from None
    return parse_junit_text(data, str(path))
