"""Reused worktrees: a small pool per repository, leased to one routed run at a time.

    lease = lease_worktree(repo, settings)   # blocks only while a slot is chosen
    worktree = lease.prepare(buffers)        # reset to the user's current state; cold the first time
    ...                                      # an escalation calls prepare() again: the same worktree
    lease.release()                          # deletes the copies of the user's files; or let the process
                                             # die: the kernel drops the lock
    prune_pool(repo, settings) -> list[Path] # at the start of a run: idle, surplus and half-made slots
    pool_slots() -> list[SlotInfo]           # for `route-agent state`
    drop_idle_slots() -> list[Path]          # for `route-agent state prune`

A fresh `git worktree add` checks out the whole repository for every attempt (seconds to minutes on
a large one); resetting an existing worktree touches only what differs. Layout:

    state_dir()/worktrees/<repository key>/
        slot-1/          a worktree of the repository (`git worktree add --detach`)
        slot-1.lock      flock'd by the process that holds the lease: it dies with that process
        slot-1.json      {"repo", "admin", "ready", "created", "last_used"}
        pool.lock        held for the moment a slot is chosen or pruned

A slot is leased by taking its lock without waiting; when every slot of the pool is leased, the run
gets an overflow worktree (`extra-<id>`) that is removed when the lease ends. A slot whose holder
died is simply free again: its next lease resets it. A slot is only used when its `.json` says
`ready` (the checkout finished); anything else is removed and made again.

Reset (`prepare`), all with hardened git (no hooks, no fsmonitor, no filter driver) and with the
worktree's git directory named explicitly (a `.git` file a check rewrote is never followed):
one `git status` of the worktree names what the last attempt left: its untracked and ignored files
are removed (what `git clean -ffdx` would remove), and its changed files plus the files that differ
between the worktree's commit and the user's HEAD are checked out from HEAD by name (what
`git checkout -f HEAD` would write), except the ones the user's copy overwrites next; then the
user's changed and untracked files are copied in and committed (worktree.snapshot_into), and HEAD
moves once. The worktree's index is split (SPLIT_INDEX), so these few updates do not each rewrite
every entry. The user's `git status` runs alongside, on the other core.
Nothing from an earlier attempt survives a reset; the user's files, index and refs are never written.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import os
import shutil
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from route_agent.workspace.git import Repo, WorkspaceError, filter_overrides, run_git
from route_agent.workspace.patches import PatchRejected, check_no_symlink
from route_agent.workspace.state import workspace_key
from route_agent.workspace.worktree import (
    UserChanges,
    Worktree,
    add_worktree,
    current_head,
    read_user_changes,
    snapshot_into,
    worktree_env,
    worktrees_dir,
)

DEFAULT_POOL_SIZE = 2
DEFAULT_IDLE_DAYS = 7.0


@dataclass(frozen=True)
class PoolSettings:
    """The policy's `worktrees:` section: slots kept per repository, days an idle slot is kept."""

    pool_size: int = DEFAULT_POOL_SIZE
    idle_days: float = DEFAULT_IDLE_DAYS


def pool_dir(repo_root: Path) -> Path:
    path = worktrees_dir() / workspace_key(repo_root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _pool_lock(folder: Path) -> Iterator[None]:
    fd = os.open(folder / "pool.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _try_lock(lock_path: Path) -> int | None:
    """Take a slot's lock without waiting; the open descriptor holds it (not inherited by children)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_leased(lock_path: Path) -> bool:
    if not lock_path.exists():
        return False
    fd = _try_lock(lock_path)
    if fd is None:
        return True
    os.close(fd)
    return False


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}")
    tmp.write_text(json.dumps(dict(data), indent=1))
    os.replace(tmp, path)


@dataclass
class Lease:
    """One run's hold on a worktree of the pool (see the module docstring)."""

    repo: Repo
    path: Path
    lock_fd: int | None
    overflow: bool = False
    cold_seconds: float | None = None
    """Set by the `prepare` that had to make the worktree (the full checkout), for the transcript."""
    worktree: Worktree | None = None
    _meta: dict[str, Any] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _busy: bool = False
    _release_pending: bool = False
    _scrub: set[str] = field(default_factory=set)
    dependency_dirs: tuple[str, ...] = ()
    """Untracked folders of installed dependencies (workspace/dependencies.py) the checks see in the
    worktree through a bind or a link: never copied in; the link or empty mount point goes with the lease."""

    @property
    def meta_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def prepare(self, buffers: Mapping[str, str] | None = None, filters: tuple[str, ...] | None = None,
                listed: UserChanges | None = None) -> Worktree:
        """Reset the leased worktree to the user's current state (plus `buffers`) and return it.

        `filters`: the repository's filter overrides (git.filter_overrides) when they were read after
        any repository code last ran, such as `Repo.config` for a run's first attempt; by default they
        are read now (a check of an earlier attempt may have configured a filter since).
        `listed`: the user's changed and untracked paths when a status just named them (the run's
        change set); a reset then copies those without a status of the user's tree of its own. A
        first checkout, which takes seconds, always asks git again after it."""
        with self._guard:
            if self.lock_fd is None:
                raise WorkspaceError(f"the lease on {self.path} was already released")
            self._busy = True
        try:
            return self._prepare(buffers, filters, listed)
        finally:
            with self._guard:
                self._busy = False
                pending = self._release_pending
            if pending:
                self.release()

    def _prepare(self, buffers: Mapping[str, str] | None, filters: tuple[str, ...] | None,
                 listed: UserChanges | None) -> Worktree:
        self.cold_seconds = None
        # The split index: see SPLIT_INDEX.
        cfg = (*(filter_overrides(self.repo.root) if filters is None else filters), *SPLIT_INDEX)
        admin = self._usable_admin()
        changes: UserChanges | None = None
        gone: list[str] = []
        worktree_head: str | None = None
        if admin is not None:
            try:
                changes, gone, worktree_head = self._reset(admin, cfg, listed)
            except (WorkspaceError, PatchRejected, OSError):
                admin = None  # it cannot be reset (a check broke it, or a kill mid-reset): made again
        if admin is None or changes is None:
            started = time.monotonic()
            self._drop()
            head = current_head(self.repo)
            self._meta = {"repo": str(self.repo.root), "ready": False, "created": time.time(), "last_used": time.time()}
            _write_meta(self.meta_path, self._meta)
            admin = add_worktree(self.repo, self.path, head)
            self._meta.update(admin=str(admin), ready=True)
            _write_meta(self.meta_path, self._meta)
            changes = read_user_changes(self.repo, self.dependency_dirs)
            self.cold_seconds = time.monotonic() - started
        try:
            self.worktree = snapshot_into(self.repo, self.path, changes.head, buffers or {}, changes=changes, admin=admin,
                                          config=cfg, unstaged_removals=gone, worktree_head=worktree_head)
        except BaseException:
            self._mark_unready()  # a half-made snapshot is never reused
            raise
        self._scrub.update(self.worktree.copied)
        self._meta["last_used"] = time.time()
        self._meta["snapshot"] = _snapshot_record(self.worktree)
        _write_meta(self.meta_path, self._meta)
        return self.worktree

    def is_made(self) -> bool:
        """This slot holds a finished checkout of this repository: a reset, not a first checkout."""
        meta = _read_meta(self.meta_path)
        return meta.get("ready") is True and meta.get("repo") == str(self.repo.root) and self.path.is_dir()

    def note_written(self, paths: Iterable[str]) -> None:
        """Paths an attempt wrote from the user's text (a patch): deleted when the lease ends."""
        self._scrub.update(paths)

    def _usable_admin(self) -> Path | None:
        """The worktree's git directory when this slot holds a finished checkout of this repository."""
        meta = _read_meta(self.meta_path)
        admin = Path(str(meta.get("admin", "")))
        if not (meta.get("ready") is True and meta.get("repo") == str(self.repo.root) and admin.is_absolute()):
            return None
        if admin.parent != self.repo.git_dir / "worktrees" or not (admin / "commondir").is_file():
            return None
        if not self.path.is_dir() or self.path.is_symlink():
            return None
        marker = self.path / ".git"
        if marker.is_symlink() or marker.is_dir():
            return None
        self._meta = meta
        # A killed git may have left its locks; this lease is the only user of the worktree.
        for lock in admin.glob("*.lock"):
            lock.unlink(missing_ok=True)
        marker.write_text(f"gitdir: {admin}\n")
        return admin

    def _reset(self, admin: Path, cfg: tuple[str, ...], listed: UserChanges | None) -> tuple[UserChanges, list[str], str]:
        """Bring the worktree back to the user's HEAD, touching only what differs.

        One `git status` of the worktree (alongside the user's, on the other core) names what the
        last attempt left: changed tracked files, and untracked and ignored files, which are removed.
        The changed files and the files that differ between the worktree's commit and the user's
        HEAD are checked out from HEAD by name, except those the snapshot overwrites with the user's
        copy anyway (it stages them, and restores any it could not copy); everything else is already
        right, and its index entry stays valid, so nothing walks the tree a second time. Returns the
        user's changes, the paths deleted from the worktree whose index entries the snapshot's update
        removes, and the worktree's HEAD (the snapshot moves it once, to its commit or the user's HEAD).
        With `listed`, the user's tree is not walked again.
        """
        env = worktree_env(self.path, admin)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as side:
            user = None if listed is not None else side.submit(read_user_changes, self.repo, self.dependency_dirs)
            try:
                current, changed, litter = _worktree_status(self.path, env, cfg)
            except WorkspaceError:
                self._mark_unready()
                if user is not None:
                    user.cancel()
                raise
            changes = user.result() if user is not None else listed
        assert changes is not None
        head = changes.head
        for rel in litter:
            _remove_litter(self.path, rel)
        paths = dict.fromkeys(changed)
        recorded = self._meta.get("snapshot")
        if current != head and _records(recorded, current, head):
            paths.update(dict.fromkeys(recorded["paths"]))  # the last snapshot of this HEAD: its own paths
        elif current != head:
            moved = run_git(self.path, ["diff-tree", "-r", "-z", "--name-only", "--no-renames", current, head], env=env, config=cfg)
            paths.update(dict.fromkeys(p for p in moved.stdout.decode("utf-8", "surrogateescape").split("\0") if p))
        if len(paths) > MAX_PATHS_BY_NAME:
            run_git(self.path, ["checkout", "--detach", "-f", "-q", head], env=env, config=cfg)  # a branch switch: let git walk
            return changes, [], head
        overwritten = set(changes.tracked) | set(changes.untracked)
        gone = _checkout_paths(self.path, env, cfg, head, [p for p in paths if p not in overwritten])
        return changes, gone, current

    def _mark_unready(self) -> None:
        self._meta["ready"] = False
        with contextlib.suppress(OSError):
            _write_meta(self.meta_path, self._meta)

    def _drop(self) -> None:
        _remove_slot(self.path, self.repo.root, self.repo.git_dir)

    def release(self) -> None:
        """End the lease: an overflow worktree is removed, a pool slot stays for the next run. While
        `prepare` runs in another thread (a cancelled run's), the lease ends when it returns."""
        with self._guard:
            if self._busy:
                self._release_pending = True
                return
            fd, self.lock_fd = self.lock_fd, None
        if fd is None:
            return
        try:
            if self.overflow:
                self._drop()
                self.path.with_name(self.path.name + ".lock").unlink(missing_ok=True)
            else:
                self._scrub_copies()
        finally:
            os.close(fd)

    def _scrub_copies(self) -> None:
        """Delete the files that hold the user's uncommitted text, so no copy of it (a `.env`, an
        unsaved buffer) rests in the state directory between runs; the next reset restores them
        from HEAD by name (it sees them as deleted). What checks wrote stays until that reset."""
        for rel in sorted(self._scrub):
            with contextlib.suppress(OSError, WorkspaceError, PatchRejected):
                _remove_litter(self.path, rel)
        self._scrub.clear()
        for rel in self.dependency_dirs:
            _remove_link_or_mount_point(self.path, rel)


SPLIT_INDEX = ("-c", "core.splitIndex=true", "-c", "splitIndex.sharedIndexExpire=now")
"""A pool worktree's index is split: each of an attempt's few index writes (restore, snapshot, the
patch) writes the entries that changed, not all of them (3.6 MB at 34k files), and the one shared
index left behind by a rewrite is deleted then (only this worktree uses its git directory)."""

MAX_PATHS_BY_NAME = 2000
"""Above this many paths to restore, one `git checkout -f` is cheaper than naming them."""


def _snapshot_record(worktree: Worktree) -> dict[str, Any] | None:
    """What the next reset needs to know of this snapshot: its commit differs from its parent (the
    user's HEAD) only in the paths it copied, so a reset from it to the same HEAD restores those
    without asking git which paths differ (`git diff-tree`)."""
    if worktree.base == worktree.head or len(worktree.copied) > MAX_PATHS_BY_NAME:
        return None
    return {"commit": worktree.base, "parent": worktree.head, "paths": list(worktree.copied)}


def _records(recorded: object, current: str, head: str) -> TypeGuard[dict[str, Any]]:
    """The pool's record describes the worktree's commit `current` as a snapshot on `head`."""
    return (isinstance(recorded, dict) and recorded.get("commit") == current and recorded.get("parent") == head
            and isinstance(recorded.get("paths"), list) and all(isinstance(p, str) for p in recorded["paths"]))


def _worktree_status(path: Path, env: Mapping[str, str], cfg: tuple[str, ...]) -> tuple[str, list[str], list[str]]:
    """The worktree's HEAD, its tracked paths that differ from HEAD (index or file), and its
    untracked and ignored entries (a directory entry ends with `/`)."""
    proc = run_git(path, ["status", "--porcelain=v2", "-z", "--branch", "--ignored=matching", "--untracked-files=normal",
                          "--no-renames", "--ignore-submodules=all"], env=env, config=cfg)
    current = ""
    changed: list[str] = []
    litter: list[str] = []
    for raw in proc.stdout.split(b"\0"):
        entry = raw.decode("utf-8", "surrogateescape")
        if entry.startswith("# branch.oid "):
            current = entry[len("# branch.oid "):].strip()
        elif entry.startswith("1 "):
            changed.append(entry.split(" ", 8)[8])
        elif entry.startswith("u "):
            changed.append(entry.split(" ", 10)[10])
        elif entry.startswith(("? ", "! ")):
            litter.append(entry[2:])
    if len(current) < 40:
        raise WorkspaceError(f"the worktree {path} has no commit checked out")
    return current, changed, litter


def _remove_litter(root: Path, rel: str) -> None:
    """Remove an untracked or ignored entry; never through a link (a link itself is removed)."""
    rel = rel.rstrip("/")
    if not rel or rel.startswith("/") or ".." in Path(rel).parts:
        return
    if "/" in rel:
        check_no_symlink(root, str(Path(rel).parent))
    target = root / rel
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        force_rmtree(target)
    else:
        target.unlink()


def _remove_link_or_mount_point(root: Path, rel: str) -> None:
    """Remove a dependency folder's link, or its empty mount point; never anything through a link,
    never a folder with something in it."""
    with contextlib.suppress(OSError, WorkspaceError, PatchRejected):
        if "/" in rel:
            check_no_symlink(root, str(Path(rel).parent))
        target = root / rel
        if stat.S_ISLNK(os.lstat(target).st_mode):
            target.unlink()
        else:
            target.rmdir()


def _checkout_paths(path: Path, env: Mapping[str, str], cfg: tuple[str, ...], head: str, paths: list[str]) -> list[str]:
    """Make each path's file and index entry what `head` has; a path `head` lacks is deleted from
    the worktree and returned (its index entry is removed with the snapshot's update)."""
    if not paths:
        return []
    probe = "".join(f"{head}:{p}\n" for p in paths).encode("utf-8", "surrogateescape")
    found = run_git(path, ["cat-file", "--batch-check"], input_bytes=probe, env=env, config=cfg).stdout.splitlines()
    present = [p for p, line in zip(paths, found, strict=False) if not line.endswith((b" missing", b" ambiguous"))]
    gone = [p for p in paths if p not in set(present)]
    for rel in gone:
        _remove_litter(path, rel)
    if present:
        listing = "".join(f"{p}\0" for p in present).encode("utf-8", "surrogateescape")
        run_git(path, ["checkout", "-f", "-q", head, "--pathspec-from-file=-", "--pathspec-file-nul"], input_bytes=listing,
                env={**env, "GIT_LITERAL_PATHSPECS": "1"}, config=cfg)
    return gone


def lease_worktree(repo: Repo, settings: PoolSettings | None = None) -> Lease:
    """A free slot of this repository's pool (a made one first), or an overflow worktree."""
    settings = settings or PoolSettings()
    folder = pool_dir(repo.root)
    with _pool_lock(folder):
        names = [f"slot-{n}" for n in range(1, settings.pool_size + 1)]
        names.sort(key=lambda name: _read_meta(folder / f"{name}.json").get("ready") is not True)
        for name in names:
            fd = _try_lock(folder / f"{name}.lock")
            if fd is not None:
                return Lease(repo, folder / name, fd)
        name = f"extra-{uuid.uuid4().hex[:10]}"
        fd = _try_lock(folder / f"{name}.lock")
        return Lease(repo, folder / name, fd, overflow=True)


def _remove_slot(path: Path, repo_root: Path | None, git_dir: Path | None) -> None:
    """Remove a slot's worktree and its registration in the repository (rm is much faster than
    `git worktree remove`, which first compares every file)."""
    meta_path = path.with_name(path.name + ".json")
    meta = _read_meta(meta_path)
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        force_rmtree(path)
    admin = Path(str(meta.get("admin", "")))
    if git_dir is not None and admin.is_absolute() and admin.parent == git_dir / "worktrees" and admin.is_dir():
        shutil.rmtree(admin, ignore_errors=True)
    meta_path.unlink(missing_ok=True)
    if repo_root is not None and repo_root.is_dir():
        run_git(repo_root, ["worktree", "prune"], check=False)


def force_rmtree(path: Path) -> None:
    """rmtree that also removes what a check made read-only (checks run as the same user)."""

    def writable_then_retry(func: Callable[[str], object], name: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
            func(name)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=writable_then_retry)
    else:
        shutil.rmtree(path, onerror=writable_then_retry)


@dataclass(frozen=True)
class SlotInfo:
    path: Path
    repo: str
    leased: bool
    ready: bool
    last_used: float | None
    overflow: bool


def pool_slots() -> list[SlotInfo]:
    """Every slot of every repository's pool in the state directory."""
    out: list[SlotInfo] = []
    root = worktrees_dir()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "pool.lock").exists()):
        names = {p.name.removesuffix(".json") for p in folder.glob("*.json")}
        names |= {p.name for p in folder.iterdir() if p.is_dir()}
        for name in sorted(names):
            meta = _read_meta(folder / f"{name}.json")
            last = meta.get("last_used")
            out.append(SlotInfo(folder / name, str(meta.get("repo", "?")), is_leased(folder / f"{name}.lock"),
                                meta.get("ready") is True, float(last) if isinstance(last, int | float) else None,
                                name.startswith("extra-")))
    return out


def _git_dir_of(meta: Mapping[str, Any]) -> Path | None:
    admin = Path(str(meta.get("admin", "")))
    return admin.parent.parent if admin.is_absolute() else None


def _drop_if_free(slot: SlotInfo) -> bool:
    """Remove an unleased slot, holding its lock while doing so."""
    lock = slot.path.with_name(slot.path.name + ".lock")
    fd = _try_lock(lock)
    if fd is None:
        return False
    try:
        meta = _read_meta(slot.path.with_name(slot.path.name + ".json"))
        repo = Path(slot.repo) if slot.repo != "?" else None
        _remove_slot(slot.path, repo, _git_dir_of(meta))
        if slot.overflow:
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True


def prune_pool(repo: Repo, settings: PoolSettings | None = None) -> list[Path]:
    """At the start of a run: remove free slots that are half made, overflow leftovers, beyond this
    repository's pool size, idle longer than `idle_days` (any repository's), or of a repository
    that no longer exists. Leased slots are never touched."""
    settings = settings or PoolSettings()
    now = time.time()
    removed: list[Path] = []
    mine = pool_dir(repo.root)
    keep = {f"slot-{n}" for n in range(1, settings.pool_size + 1)}
    for slot in pool_slots():
        if slot.leased:
            continue
        idle = slot.last_used is not None and now - slot.last_used > settings.idle_days * 86400
        gone = slot.repo == "?" or not Path(slot.repo).is_dir()
        ours = slot.path.parent == mine
        surplus = ours and slot.path.name not in keep
        half_made = ours and not slot.ready
        if (idle or gone or surplus or half_made or slot.overflow) and _drop_if_free(slot):
            removed.append(slot.path)
    return removed


def drop_idle_slots() -> list[Path]:
    """`route-agent state prune`: remove every slot no run holds (the next run checks out again)."""
    return [slot.path for slot in pool_slots() if not slot.leased and _drop_if_free(slot)]


__all__ = [
    "DEFAULT_IDLE_DAYS", "DEFAULT_POOL_SIZE", "Lease", "PoolSettings", "SlotInfo", "drop_idle_slots", "is_leased",
    "lease_worktree", "pool_dir", "pool_slots", "prune_pool",
]
