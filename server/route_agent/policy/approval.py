"""Approval of a repository policy's verification commands (safety.md: treat them like tasks.json).

A policy file inside a repository declares commands that will run on the user's machine. They run
only after the user approved the exact list once; the approval is stored in the state directory as the
SHA-256 of that list (workspace/approvals.py: the core keeps no state), and any change asks again,
showing what changed. A policy the user gave with `--policy`, the user's own config policy and the
shipped default are trusted.

The hash is over the canonical JSON of `[[lane, name, argv], ...]` (fast lane first, then strong, in
the policy's order), `json.dumps(items, separators=(",", ":"), ensure_ascii=False)` as UTF-8: the
VS Code extension computes the same bytes (client-vscode/src/logic/approval.ts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from route_agent.policy.loader import Layer, read_layer
from route_agent.policy.models import Policy

__all__ = [
    "PolicyCommand",
    "RepoPolicyStatus",
    "command_lines",
    "commands_diff",
    "commands_hash",
    "policy_commands",
    "repo_declared_commands",
    "sets_allow_unsandboxed",
    "unsandboxed_opt_in_trusted",
]


@dataclass(frozen=True)
class PolicyCommand:
    lane: str
    name: str
    run: tuple[str, ...]

    def line(self) -> str:
        shown = " ".join(a if a and all(c.isalnum() or c in "@%+=:,./-_" for c in a) else json.dumps(a) for a in self.run)
        return f"[{self.lane}] {self.name}: {shown}"

    def as_dict(self) -> dict[str, Any]:
        return {"lane": self.lane, "name": self.name, "run": list(self.run)}


def policy_commands(policy: Policy) -> list[PolicyCommand]:
    """Every command of the effective policy: the verification checks, fast lane first, in the
    policy's order, then every external agent under `agents:` (lane "agent"; its `env` shown first as
    NAME=value, since it changes what the command does)."""
    commands = [
        PolicyCommand(lane, check.name, tuple(check.run))
        for lane in ("fast", "strong")
        for check in getattr(policy.verification, lane)
    ]
    for name, agent in policy.agents.items():
        commands.append(PolicyCommand("agent", name, (*(f"{k}={v}" for k, v in agent.env.items()), *agent.command)))
    return commands


def commands_hash(commands: Sequence[PolicyCommand]) -> str:
    canonical = json.dumps([[c.lane, c.name, list(c.run)] for c in commands], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def command_lines(commands: Sequence[PolicyCommand]) -> list[str]:
    return [c.line() for c in commands]


def commands_diff(previous: Sequence[PolicyCommand], current: Sequence[PolicyCommand]) -> tuple[list[str], list[str]]:
    """(added, removed) lines since the previous approval, order-insensitive."""
    before, after = command_lines(previous), command_lines(current)
    return [line for line in after if line not in before], [line for line in before if line not in after]


def repo_declared_commands(layer_data: dict[str, Any]) -> int:
    """How many commands a repository policy layer declares itself (verification.fast/strong, agents)."""
    agents = layer_data.get("agents")
    count = len(agents) if isinstance(agents, dict) else 0
    verification = layer_data.get("verification")
    if not isinstance(verification, dict):
        return count
    return count + sum(len(v) for lane in ("fast", "strong") if isinstance(v := verification.get(lane), list))


def sets_allow_unsandboxed(layer_data: dict[str, Any], value: bool | None = None) -> bool:
    """Whether a policy layer sets `allow_unsandboxed` (top-level `agent:` or a lane's `agent:`),
    to `value` when one is given."""
    found: list[Any] = []
    agent = layer_data.get("agent")
    if isinstance(agent, dict) and "allow_unsandboxed" in agent:
        found.append(agent["allow_unsandboxed"])
    models = layer_data.get("models")
    if isinstance(models, dict):
        for spec in models.values():
            if isinstance(spec, dict) and isinstance(spec.get("agent"), dict) and "allow_unsandboxed" in spec["agent"]:
                found.append(spec["agent"]["allow_unsandboxed"])
    return any(v is value for v in found) if value is not None else bool(found)


def unsandboxed_opt_in_trusted(root: Path | None, sources: Sequence[str], read: LayerReader | None = None) -> bool:
    """Whether the user's own policy (their config policy, or a --policy file they chose) sets
    `allow_unsandboxed: true`; the repository's policy among `sources` never counts."""
    repo = repo_policy_file(root) if root is not None else None
    for source in sources:
        path = Path(source)
        if (repo is not None and source == str(repo)) or not path.is_file():
            continue
        if sets_allow_unsandboxed(_reader(read)(path).data, value=True):
            return True
    return False


@dataclass(frozen=True)
class RepoPolicyStatus:
    policy_path: Path
    commands: tuple[PolicyCommand, ...]
    sha256: str
    approved: bool
    previous: tuple[PolicyCommand, ...] | None
    """The commands of the last approval for this workspace, when there is one with another hash."""


LayerReader = Callable[[Path], Layer]


def _reader(read: LayerReader | None) -> LayerReader:
    return read or read_layer


def repo_policy_file(root: Path) -> Path | None:
    """The repository's own policy file, as `PolicyCache.for_workspace` would pick it."""
    from route_agent.policy import REPO_POLICY_PATHS

    for rel in REPO_POLICY_PATHS:
        candidate = root / rel
        if candidate.is_file():
            return candidate
    return None


ENDPOINT_KEYS = ("base_url", "api_key_env")
"""Model settings with which a repository's policy could choose where the user's API key goes."""


PLATFORM_CREDENTIALS = ("GITHUB_", "GH_", "GITLAB_", "AWS_", "AZURE_", "GOOGLE_", "GCP_", "SSH_", "NPM_", "PYPI_", "DOCKER_", "HEROKU_")


def is_loopback_url(url: object) -> bool:
    """True for an http(s) URL whose host is this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress
    from urllib.parse import urlsplit

    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def repo_endpoint_overrides(root: Path, read: LayerReader | None = None) -> tuple[Path, list[str]] | None:
    """The repository policy's file and the dotted keys in it that would send an API key off this
    machine or choose which variable is sent to a remote host (`models.fast.base_url`, ...), or None.

    A model on a loopback endpoint (a local Ollama, vLLM or llama.cpp server) is allowed, since the
    key stays on this machine, unless the variable it names is a platform credential (GitHub, cloud,
    SSH, package registries), which is never a model key.
    """
    path = repo_policy_file(root)
    if path is None:
        return None
    found = endpoint_overrides_in(path, read)
    return (path, found) if found else None


def endpoint_overrides_in(path: Path, read: LayerReader | None = None) -> list[str]:
    """The dotted keys of the policy file `path` that a repository's policy may not set (see
    `repo_endpoint_overrides`)."""
    models = _reader(read)(path).data.get("models")
    found: list[str] = []
    if isinstance(models, dict):
        for role, top in models.items():
            spec, where = top, f"models.{role}"
            while isinstance(spec, dict):
                if not is_loopback_url(spec.get("base_url")):
                    found.extend(f"{where}.{key}" for key in ENDPOINT_KEYS if key in spec)
                elif str(spec.get("api_key_env", "")).upper().startswith(PLATFORM_CREDENTIALS):
                    found.append(f"{where}.api_key_env")
                spec, where = spec.get("fallback"), f"{where}.fallback"
    return found


# --- unsandboxed execution (issue 12, item 3) ---------------------------------------------------
# Without the sandbox a repository's checks, its tests and its conftest run as the user: they can
# read every key the user's shell exported from /proc/<pid>/environ of their parents. They run
# only after the user accepted that for this repository once, stored beside command approvals.


