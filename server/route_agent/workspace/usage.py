"""What the state directory holds and what it costs on disk; freeing it (`route-agent state [prune]`).

    state_usage(measure=True) -> StateUsage          # per part: count, bytes, detail lines
    prune_state(runs_older_than_days=30) -> PruneResult

Parts: `worktrees/` (the reused worktrees of each repository's pool, and one-off worktrees),
`runs/` (verified patches kept for `route-agent apply`), `patches/` (patches the editor showed),
the ledger (`ledger.sqlite3`, the measurements routing is tuned from: never pruned here), and
the rest (approvals, the latest verification per workspace).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from route_agent.workspace.pool import drop_idle_slots, force_rmtree, pool_slots
from route_agent.workspace.state import state_dir
from route_agent.workspace.worktree import process_alive


@dataclass
class Part:
    name: str
    count: int = 0
    bytes: int = 0
    details: list[str] = field(default_factory=list)


@dataclass
class StateUsage:
    path: Path
    parts: list[Part]

    @property
    def total_bytes(self) -> int:
        return sum(p.bytes for p in self.parts)


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk under `path` (links not followed, each inode counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            info = os.lstat(current)
        except OSError:
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            continue
        seen.add(key)
        total += info.st_blocks * 512
        if os.path.isdir(current) and not os.path.islink(current):
            try:
                with os.scandir(current) as entries:
                    stack.extend(Path(e.path) for e in entries)
            except OSError:
                continue
    return total


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _ago(then: float | None) -> str:
    if then is None:
        return "never used"
    hours = (time.time() - then) / 3600
    return f"last used {hours * 60:.0f} min ago" if hours < 1 else (f"last used {hours:.1f} h ago" if hours < 48 else
                                                                    f"last used {hours / 24:.0f} days ago")


def state_usage(measure: bool = True) -> StateUsage:
    root = state_dir()
    worktrees = Part("worktrees")
    for slot in pool_slots():
        size = disk_bytes(slot.path) if measure else 0
        worktrees.count += slot.path.is_dir()
        worktrees.bytes += size
        state = "leased" if slot.leased else ("idle" if slot.ready else "unfinished")
        kind = "one-off" if slot.overflow else slot.path.name
        worktrees.details.append(f"{slot.repo}  {kind}  {state}, {_ago(slot.last_used)}  {human(size)}")
    for owner in sorted((root / "worktrees").glob("*.owner.json")) if (root / "worktrees").is_dir() else []:
        path = owner.with_name(owner.name.removesuffix(".owner.json"))
        size = disk_bytes(path) if measure else 0
        worktrees.count += 1
        worktrees.bytes += size
        worktrees.details.append(f"{_owner_repo(owner)}  one-off {path.name}  {human(size)}")
    runs = _folder_part("runs", root / "runs", measure)
    patches = _folder_part("patches", root / "patches", measure)
    ledger = Part("ledger")
    for file in sorted(root.glob("ledger.sqlite3*")):
        ledger.count += file.name == "ledger.sqlite3"
        ledger.bytes += disk_bytes(file)
        ledger.details.append(str(file))
    known = {"worktrees", "runs", "patches"} | {f.name for f in root.glob("ledger.sqlite3*")}
    other = Part("other")
    for entry in sorted(root.iterdir()):
        if entry.name not in known:
            other.count += 1
            other.bytes += disk_bytes(entry) if measure else 0
            other.details.append(entry.name)
    return StateUsage(root, [worktrees, runs, patches, ledger, other])


def _owner_repo(owner: Path) -> str:
    try:
        return str(json.loads(owner.read_text("utf-8")).get("repo", "?"))
    except (OSError, ValueError, AttributeError):
        return "?"


def _folder_part(name: str, folder: Path, measure: bool) -> Part:
    part = Part(name)
    if folder.is_dir():
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
        part.count = len(entries)
        part.bytes = disk_bytes(folder) if measure else 0
    return part


@dataclass
class PruneResult:
    worktrees: list[Path] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    kept_leased: int = 0


def prune_state(runs_older_than_days: float = 30.0) -> PruneResult:
    """Free the state directory: every worktree no live run holds, one-off worktrees of dead
    processes, stored runs and shown patches older than `runs_older_than_days`. The ledger is kept."""
    before = state_usage().total_bytes
    result = PruneResult()
    result.worktrees.extend(drop_idle_slots())
    result.kept_leased = sum(1 for slot in pool_slots() if slot.leased)
    result.worktrees.extend(_drop_dead_one_offs())
    cutoff = time.time() - runs_older_than_days * 86400
    for folder in (state_dir() / "runs", state_dir() / "patches"):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            try:
                old = entry.lstat().st_mtime < cutoff
            except OSError:
                continue
            if not old:
                continue
            if entry.is_dir() and not entry.is_symlink():
                force_rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
            result.runs.append(entry)
    result.freed_bytes = max(0, before - state_usage().total_bytes)
    return result


def _drop_dead_one_offs() -> list[Path]:
    from route_agent.workspace.git import run_git

    removed: list[Path] = []
    folder = state_dir() / "worktrees"
    if not folder.is_dir():
        return removed
    host = socket.gethostname()
    for owner in sorted(folder.glob("*.owner.json")):
        try:
            info = json.loads(owner.read_text("utf-8"))
        except (OSError, ValueError):
            info = {}
        pid = info.get("pid")
        alive = isinstance(pid, int) and info.get("host") == host and process_alive(pid)
        if alive:
            continue
        path = owner.with_name(owner.name.removesuffix(".owner.json"))
        if path.exists():
            force_rmtree(path)
        owner.unlink(missing_ok=True)
        repo = Path(str(info.get("repo", "")))
        if repo.is_absolute() and repo.is_dir():
            run_git(repo, ["worktree", "prune"], check=False)
        removed.append(path)
    return removed


__all__ = ["Part", "PruneResult", "StateUsage", "disk_bytes", "human", "prune_state", "state_usage"]
