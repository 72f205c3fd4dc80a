"""Seconds per test folder from a pytest junit XML file (scripts/test.sh prints this after pytest).

    python scripts/suite_times.py .test-results/junit.xml [--root DIR]

A test's folder is the deepest directory under DIR (default: the current directory, the one pytest
ran from) that its `classname` names: `tests.e2e.cli.test_demo` -> tests/e2e/cli. A test's seconds
are what pytest wrote for it (setup, call and teardown); collection and session start-up belong to
no test, so the table's total is below the session's wall time, which is printed under it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree as ET  # the route-agent venv has it (a dependency)


@dataclass
class FolderTime:
    tests: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0


def folder_of(classname: str, root: Path) -> str:
    """The deepest existing directory under `root` that the dotted `classname` names."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        if (root.joinpath(*parts[:end])).is_dir():
            return "/".join(parts[:end])
    return "(outside " + str(root) + ")"


def folder_times(junit: Path, root: Path) -> tuple[dict[str, FolderTime], float | None]:
    """Per folder: tests, failed (failures and errors), skipped, seconds; and the session's wall time."""
    top = ET.parse(junit).getroot()
    if top is None:
        return {}, None
    folders: dict[str, FolderTime] = {}
    for case in top.iter("testcase"):
        row = folders.setdefault(folder_of(case.get("classname", ""), root), FolderTime())
        row.tests += 1
        row.seconds += float(case.get("time") or 0.0)
        if case.find("failure") is not None or case.find("error") is not None:
            row.failed += 1
        elif case.find("skipped") is not None:
            row.skipped += 1
    wall = next((float(s.get("time", "")) for s in top.iter("testsuite") if s.get("time")), None)
    return folders, wall


def render(folders: dict[str, FolderTime], wall: float | None) -> list[str]:
    rows = sorted(folders.items(), key=lambda item: (-item[1].seconds, item[0]))
    total = FolderTime(sum(r.tests for _, r in rows), sum(r.failed for _, r in rows), sum(r.skipped for _, r in rows),
                       sum(r.seconds for _, r in rows))
    width = max([len("folder"), len("total"), *(len(name) for name, _ in rows)])
    lines = [f"{'folder':<{width}}  {'tests':>6}  {'failed':>6}  {'skipped':>7}  {'seconds':>9}  {'share':>6}"]
    for name, r in [*rows, ("total", total)]:
        share = r.seconds / total.seconds * 100 if total.seconds > 0 else 0.0
        lines.append(f"{name:<{width}}  {r.tests:>6}  {r.failed:>6}  {r.skipped:>7}  {r.seconds:>9.1f}  {share:>5.1f}%")
    if wall is not None:
        lines.append(f"session wall time {wall:.1f} s (the rest is collection and start-up)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seconds per test folder from a pytest junit XML file.")
    parser.add_argument("junit", type=Path, help="the file pytest --junitxml wrote")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the directory pytest ran from (default: this one)")
    args = parser.parse_args(argv)
    try:
        folders, wall = folder_times(args.junit, args.root)
    except (OSError, ValueError, ET.ParseError) as exc:  # ValueError: defusedxml refused it
        print(f"suite_times: cannot read {args.junit}: {exc}", file=sys.stderr)
        return 2
    for line in render(folders, wall):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
