"""What the user approved, stored in the state directory: per workspace, the SHA-256 of exactly the
verification commands a repository's policy declares (and the list, so a change can show what
changed), and the acceptance that a repository's code runs without the sandbox. What is hashed and
compared is policy/approval.py's (the core keeps no state).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from route_agent.policy.approval import (
    LayerReader,
    PolicyCommand,
    RepoPolicyStatus,
    commands_hash,
    policy_commands,
    repo_declared_commands,
    repo_policy_file,
)
from route_agent.policy.loader import read_layer
from route_agent.policy.models import Policy
from route_agent.workspace.state import state_dir


def approvals_path() -> Path:
    return state_dir() / "policy-approvals.json"


def _workspace_id(root: Path) -> str:
    return str(root.resolve())


def _load_store() -> dict[str, Any]:
    try:
        data = json.loads(approvals_path().read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_approval(root: Path) -> tuple[str, tuple[PolicyCommand, ...]] | None:
    """The approved hash and commands for a workspace, or None."""
    record = _load_store().get(_workspace_id(root))
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return None
    commands: list[PolicyCommand] = []
    for item in record.get("commands") or ():
        if isinstance(item, dict) and isinstance(item.get("run"), list):
            commands.append(PolicyCommand(str(item.get("lane", "")), str(item.get("name", "")), tuple(str(a) for a in item["run"])))
    return str(record["sha256"]).lower(), tuple(commands)


def record_approval(root: Path, policy_path: Path, commands: Sequence[PolicyCommand]) -> str:
    """Store the approval of exactly `commands` for the workspace (atomically); returns the hash."""
    digest = commands_hash(commands)
    store = _load_store()
    store[_workspace_id(root)] = {
        "sha256": digest,
        "commands": [c.as_dict() for c in commands],
        "policy_path": str(policy_path),
        "approved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    target = approvals_path()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".approvals-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(store, handle, indent=2, ensure_ascii=False)
    os.replace(tmp, target)
    return digest


def repo_policy_status(root: Path, policy_path: Path, policy: Policy) -> RepoPolicyStatus:
    commands = tuple(policy_commands(policy))
    digest = commands_hash(commands)
    stored = read_approval(root)
    approved = stored is not None and stored[0] == digest
    previous = stored[1] if stored is not None and not approved else None
    return RepoPolicyStatus(policy_path, commands, digest, approved, previous)


def repo_policy_needing_approval(root: Path, policy: Policy, read: LayerReader | None = None) -> RepoPolicyStatus | None:
    """The approval status when the repository's policy declares commands of its own, else None.

    `policy` is the effective policy built from that file (not from a `--policy` file). `read`
    parses the file; pass a `PolicyCache.layer` to re-read it only when it changed."""
    path = repo_policy_file(root)
    if path is None:
        return None
    if repo_declared_commands((read or read_layer)(path).data) == 0:
        return None
    return repo_policy_status(root, path, policy)


def unsandboxed_path() -> Path:
    return state_dir() / "unsandboxed-approvals.json"


def _load_unsandboxed() -> dict[str, Any]:
    try:
        data = json.loads(unsandboxed_path().read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def unsandboxed_accepted(root: Path) -> bool:
    """True when the user accepted that this repository's code runs without the sandbox."""
    record = _load_unsandboxed().get(_workspace_id(root))
    return isinstance(record, dict) and isinstance(record.get("accepted_at"), str)


def record_unsandboxed(root: Path) -> None:
    """Store the user's acceptance of unsandboxed execution for the repository (atomically, 0600)."""
    store = _load_unsandboxed()
    store[_workspace_id(root)] = {"accepted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    target = unsandboxed_path()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".unsandboxed-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(store, handle, indent=2, ensure_ascii=False)
    os.replace(tmp, target)
