"""Approving a repository policy's verification commands, for every front end (`route-agent policy
approve`, the editor's `route-agent.approvePolicy` and `route-agent.policyCommands`).

    state = approval_state(root, policy_cache=None, explicit=None)   # WorkspaceError, PolicyError
    approve(state, expected_sha256)                                  # ApprovalMismatch; records it

Only exactly the list whose SHA-256 the user was shown is approved (workspace/approvals.py stores it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from route_agent.policy import LoadedPolicy, PolicyCache
from route_agent.policy.approval import PolicyCommand, RepoPolicyStatus, commands_hash, policy_commands
from route_agent.workspace.approvals import record_approval
from route_agent.workspace.approvals import repo_policy_needing_approval as _needing
from route_agent.workspace.git import open_repo
from route_agent.workspace.state import user_policy_path


class ApprovalMismatch(ValueError):
    """The commands changed since the user was shown them: nothing is approved."""


@dataclass(frozen=True)
class ApprovalState:
    root: Path
    """The repository's root."""
    loaded: LoadedPolicy
    commands: tuple[PolicyCommand, ...]
    """Every verification command of the effective policy."""
    status: RepoPolicyStatus | None
    """None when the policy in force is the user's own (`explicit`) or the repository's declares no commands."""
    explicit: Path | None = None

    @property
    def approved(self) -> bool:
        return self.status is None or self.status.approved

    def as_dict(self) -> dict[str, Any]:
        """The editor's `route-agent.policyCommands` answer (client-vscode/README.md)."""
        policy_path = str(self.status.policy_path) if self.status else (str(self.explicit) if self.explicit else None)
        return {"policyPath": policy_path, "commands": [c.as_dict() for c in self.commands], "sha256": commands_hash(self.commands),
                "approved": self.approved, "trusted": self.status is None}


def approval_state(root: Path, policy_cache: PolicyCache | None = None, explicit: Path | None = None) -> ApprovalState:
    cache = policy_cache or PolicyCache()
    repo = open_repo(root)
    loaded = cache.for_workspace(repo.root, explicit, user_policy_path())
    status = None if explicit is not None else _needing(repo.root, loaded.policy, cache.layer)
    return ApprovalState(repo.root, loaded, tuple(policy_commands(loaded.policy)), status, explicit)


def approve(state: ApprovalState, expected_sha256: str | None) -> str | None:
    """Record the approval of the repository policy's commands; returns their hash (None: nothing to
    approve). With `expected_sha256`, only when the commands still have that hash."""
    status = state.status
    if status is None:
        return None
    if expected_sha256 is not None and expected_sha256.strip().lower() != status.sha256:
        raise ApprovalMismatch(f"the policy's commands changed (sha256 {status.sha256}, not {expected_sha256}); nothing was approved")
    record_approval(state.root, status.policy_path, status.commands)
    return status.sha256
