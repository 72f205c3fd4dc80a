"""Findings: what verification found, at a file and line of the user's tree.

Parsers turn JUnit XML, SARIF and `file:line:col: message` problem-matcher output (tsc, mypy,
eslint's unix format, ruff's concise format) into findings. Paths are mapped back from the worktree
to the user's repository-relative paths.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from route_agent.verify.junit import ReportError, parse_junit_text

Severity = Literal["error", "warning", "info", "hint"]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    message: str
    severity: Severity = "error"
    path: str | None = None
    line: int | None = None
    column: int | None = None
    rule: str | None = None
    kind: str = "check"
    """check, tamper, scope, integrity, verifier, patch"""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def location(self) -> str:
        if not self.path:
            return self.check
        return f"{self.path}:{self.line}" + (f":{self.column}" if self.column else "") if self.line else self.path


def to_repo_path(raw: str, worktree: Path) -> str | None:
    """A path a tool printed, as a repository-relative POSIX path, or None when outside."""
    raw = raw.strip().removeprefix("file://")
    candidate = PurePosixPath(raw)
    if candidate.is_absolute():
        try:
            return PurePosixPath(Path(raw).resolve(strict=False).relative_to(worktree.resolve())).as_posix()
        except ValueError:
            try:
                return candidate.relative_to(PurePosixPath(str(worktree))).as_posix()
            except ValueError:
                return None
    parts = [p for p in candidate.parts if p not in (".", "")]
    if ".." in parts:
        return None
    return PurePosixPath(*parts).as_posix() if parts else None


def from_junit(text: str | bytes, check: str, worktree: Path) -> list[Finding]:
    try:
        summary = parse_junit_text(text, f"{check} report")
    except ReportError as exc:
        return [Finding(check, str(exc), "error", kind="check")]
    out = []
    for failure in summary.failures:
        path = to_repo_path(failure.file, worktree) if failure.file else None
        out.append(Finding(check, f"{failure.test_id}: {failure.message}".strip(), "error", path, failure.line, rule=failure.kind))
    return out


_SARIF_LEVEL: dict[str, Severity] = {"error": "error", "warning": "warning", "note": "info", "none": "hint"}


def from_sarif(text: str | bytes, check: str, worktree: Path) -> list[Finding]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [Finding(check, f"SARIF output is not JSON: {exc}", "error")]
    out: list[Finding] = []
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list):
        return [Finding(check, "SARIF output has no runs", "error")]
    for run in runs:
        for result in (run or {}).get("results") or []:
            if not isinstance(result, dict):
                continue
            message = (result.get("message") or {}).get("text") or result.get("ruleId") or "finding"
            level = _SARIF_LEVEL.get(str(result.get("level", "warning")), "warning")
            path = line = column = None
            for location in result.get("locations") or []:
                physical = (location or {}).get("physicalLocation") or {}
                uri = (physical.get("artifactLocation") or {}).get("uri")
                region = physical.get("region") or {}
                if uri:
                    path = to_repo_path(str(uri), worktree)
                    line = region.get("startLine") if isinstance(region.get("startLine"), int) else None
                    column = region.get("startColumn") if isinstance(region.get("startColumn"), int) else None
                    break
            out.append(Finding(check, str(message)[:1000], level, path, line, column, rule=result.get("ruleId")))
    return out


# file:line[:col][:] [severity[:]] message    (mypy, ruff concise, eslint unix, gcc, go vet)
_COLON = re.compile(
    r"^(?P<file>[^\s:][^:\n]*?):(?P<line>\d+)(?::(?P<col>\d+))?:\s*(?:(?P<sev>error|warning|note|info|hint)\b:?\s*)?(?P<msg>.+)$",
    re.IGNORECASE,
)
# file(line,col): error TS1234: message   (tsc)
_TSC = re.compile(r"^(?P<file>[^\s(][^(\n]*)\((?P<line>\d+),(?P<col>\d+)\):\s*(?P<sev>error|warning)\s+(?P<rule>TS\d+):\s*(?P<msg>.+)$")
_SEVERITY: dict[str, Severity] = {"error": "error", "warning": "warning", "note": "info", "info": "info", "hint": "hint"}


# eslint's default (stylish) output: a line naming the file, then `  line:col  severity  message  rule` under it
_STYLISH = re.compile(r"^\s+(?P<line>\d+):(?P<col>\d+)\s+(?P<sev>error|warning)\s+(?P<msg>.+?)(?:\s{2,}(?P<rule>[@\w/-]+))?$")


def _file_header(line: str, worktree: Path) -> str | None:
    """The repository path a line names on its own (eslint stylish's file header), else None."""
    if not line or line[0].isspace() or len(line) > 4096 or "\x00" in line:
        return None
    try:
        header = to_repo_path(line, worktree)
        return header if header is not None and (worktree / header).is_file() else None
    except (OSError, ValueError):
        return None


def from_problem_matcher(output: str, check: str, worktree: Path, limit: int = 500) -> list[Finding]:
    out: list[Finding] = []
    stylish_file: str | None = None
    for raw_line in output.splitlines():
        line = raw_line.rstrip()
        stylish = _STYLISH.match(line) if stylish_file else None
        if stylish is not None and stylish_file is not None:
            out.append(Finding(check, stylish.group("msg")[:1000], _SEVERITY[stylish.group("sev")], stylish_file,
                               int(stylish.group("line")), int(stylish.group("col")), rule=stylish.group("rule")))
            if len(out) >= limit:
                break
            continue
        match = _TSC.match(line) or _COLON.match(line)
        if match is None:
            stylish_file = _file_header(line, worktree)
            continue
        path = to_repo_path(match.group("file"), worktree)
        if path is None or not (worktree / path).exists():
            continue  # not a file of this repository (e.g. a URL or a log prefix)
        sev = _SEVERITY.get((match.group("sev") or "error").lower(), "error")
        groups = match.groupdict()
        rule = groups.get("rule")
        message = match.group("msg").strip()
        if rule is None:
            code = re.match(r"^([A-Z]+\d+|[a-z-]+/[a-z-]+)\s", message)
            rule = code.group(1) if code else None
        col = match.group("col")
        out.append(Finding(check, message[:1000], sev, path, int(match.group("line")), int(col) if col else None, rule=rule))
        if len(out) >= limit:
            break
    return out


_GO_LOCATION = re.compile(r"^\s*(?P<file>[\w./-]+\.go):(?P<line>\d+):\s*(?P<msg>.*)$")
_GO_MODULE = re.compile(r"^module\s+(\S+)", re.MULTILINE)


def _go_package_dir(package: str, worktree: Path) -> str:
    """The folder of a Go package, relative to the worktree (from go.mod's module path)."""
    try:
        module = _GO_MODULE.search((worktree / "go.mod").read_text("utf-8", errors="replace"))
    except OSError:
        module = None
    if module is None or not (package == module.group(1) or package.startswith(module.group(1) + "/")):
        return ""
    return package[len(module.group(1)):].strip("/")


def from_go_test_json(output: str, check: str, worktree: Path, limit: int = 500) -> list[Finding]:
    """`go test -json` events: one finding per failed test at the first `file.go:line:` it printed;
    lines that are not JSON (build errors on stderr) go through the problem matcher."""
    printed: dict[tuple[str, str], list[str]] = {}
    failed: list[tuple[str, str]] = []
    plain: list[str] = []
    for raw in output.splitlines():
        try:
            event = json.loads(raw) if raw.startswith("{") else None
        except ValueError:
            event = None
        if not isinstance(event, dict):
            plain.append(raw)
            continue
        package, test, action = str(event.get("Package") or ""), event.get("Test"), event.get("Action")
        if not isinstance(test, str):
            continue
        if action == "output":
            printed.setdefault((package, test), []).append(str(event.get("Output") or ""))
        elif action == "fail":
            failed.append((package, test))
    out = from_problem_matcher("\n".join(plain), check, worktree, limit)
    for package, test in failed[:limit]:
        lines = [line.rstrip("\n") for line in printed.get((package, test), [])]
        path = line_no = None
        message = ""
        for line in lines:
            found = _GO_LOCATION.match(line)
            if found:
                folder = _go_package_dir(package, worktree)
                candidate = f"{folder}/{found.group('file')}" if folder else found.group("file")
                path = to_repo_path(candidate, worktree)
                line_no, message = int(found.group("line")), found.group("msg").strip()
                break
        out.append(Finding(check, f"{test}: {message or 'failed'}"[:1000], "error", path, line_no, rule="failure"))
    return out


def from_exit_code(check: str, exit_code: int | None, tail: str, timed_out: bool) -> Finding:
    if timed_out:
        return Finding(
            check, f"{check} timed out and was killed; a timeout is never a pass.\n{tail[-2000:]}".rstrip(), "error", rule="timeout"
        )
    return Finding(check, f"{check} exited with {exit_code}.\n{tail[-2000:]}".rstrip(), "error", rule=f"exit-{exit_code}")
