"""The user's state directory: ledger, approvals, the latest verification per workspace.

`ROUTE_AGENT_STATE_DIR` overrides the platform default (for tests and for teams that keep state
on a shared disk).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs

from route_agent.signals.compute import Evidence, TestFailures


def state_dir() -> Path:
    """The state directory, created private (0700): it holds the ledger, approvals, stored runs and
    worktrees of the user's code. One made more open earlier (0755) is tightened when it is ours."""
    override = os.environ.get("ROUTE_AGENT_STATE_DIR")
    path = Path(override) if override else Path(platformdirs.user_state_dir("route-agent", appauthor=False))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = path.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            path.chmod(0o700)
    except OSError:
        pass  # a read-only or foreign directory: the files written into it are still 0600
    return path


def make_private(path: Path) -> None:
    """Make a file route-agent wrote readable by the user only (0600)."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600, follow_symlinks=False)


def user_policy_path() -> Path:
    override = os.environ.get("ROUTE_AGENT_CONFIG_DIR")
    base = Path(override) if override else Path(platformdirs.user_config_dir("route-agent", appauthor=False))
    return base / "policy.yaml"


def workspace_key(root: Path) -> str:
    return hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _latest_path(root: Path) -> Path:
    return state_dir() / "workspaces" / workspace_key(root) / "latest-verification.json"


def write_latest_verification(root: Path, record: dict[str, Any]) -> None:
    """Atomically record the newest verification of a workspace (read by `route` for test_failures)."""
    target = _latest_path(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".latest-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(tmp, target)


def read_latest_verification(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_latest_path(root).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def latest_test_failures(root: Path) -> TestFailures:
    """`test_failures` from the newest verification recorded for the workspace (none: zero)."""
    latest = read_latest_verification(root)
    if latest and isinstance(latest.get("test_failures"), int) and latest["test_failures"] > 0:
        tests = latest.get("failed_tests") or []
        evidence = tuple(Evidence(detail=str(t)) for t in tests[:20] if isinstance(t, str))
        source = f"latest verification ({latest.get('run_id', '?')})"
        return TestFailures(count=int(latest["test_failures"]), source=source, evidence=evidence)
    return TestFailures()
