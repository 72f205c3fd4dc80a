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


def _load(path: Path) -> dict[str, Any]:
    """One of the stores, by workspace; empty when missing or unreadable."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path, store: dict[str, Any]) -> None:
    """Replace a store atomically (a temporary file in the same directory, then a rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(store, handle, indent=2, ensure_ascii=False)
    os.replace(tmp, path)


def read_approval(root: Path) -> tuple[str, tuple[PolicyCommand, ...]] | None:
    """The approved hash and commands for a workspace, or None."""
    record = _load(approvals_path()).get(_workspace_id(root))
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
    store = _load(approvals_path())
    store[_workspace_id(root)] = {
        "sha256": digest,
        "commands": [c.as_dict() for c in commands],
        "policy_path": str(policy_path),
        "approved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _save(approvals_path(), store)
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


def unsandboxed_accepted(root: Path) -> bool:
    """True when the user accepted that this repository's code runs without the sandbox."""
    record = _load(unsandboxed_path()).get(_workspace_id(root))
    return isinstance(record, dict) and isinstance(record.get("accepted_at"), str)


def record_unsandboxed(root: Path) -> None:
    """Store the user's acceptance of unsandboxed execution for the repository (atomically, 0600)."""
    store = _load(unsandboxed_path())
    store[_workspace_id(root)] = {"accepted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _save(unsandboxed_path(), store)
