"""Installed-dependency folders (node_modules, an in-repository .venv) made visible in a worktree.

A worktree holds the user's tracked files and uncommitted changes, never an ignored folder, so what
the user installed (`npm install`) is missing there and `npm test` fails for want of a package. The
folders named by `verification.dependency_dirs` (by default the ones detected for the toolchain,
policy/toolchain.py) are shown to checks and agent commands read-only and never copied:

    deps = resolve_dependency_dirs(repo_root, names)   # once per run: validated, untracked, inside the repo
    bwrap_binds(deps, worktree) -> argv                 # sandboxed: `--ro-bind <repo>/<dir> <worktree>/<dir>`
    link_dependency_dirs(deps, worktree)                # unsandboxed: a symlink per folder, made on demand
    unlink_dependency_dirs(deps, worktree)              # before a diff is taken and when the lease ends

A folder is bound only when it exists in the user's repository, git tracks nothing under it (a
tracked folder is in the worktree already) and it resolves inside the repository: a repository's
policy may name the folders, and a symlink `node_modules -> ~/.ssh` would otherwise show the user's
keys to the repository's tests. A refused folder is reported (`refused`) and nothing of it is bound.
In the worktree nothing is ever followed through a link: a mount point or a link is made only where
every parent is a real directory, and only our own link is removed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from route_agent.policy.models import dependency_dir_problem
from route_agent.workspace.git import WorkspaceError, is_git_internal, run_git
from route_agent.workspace.patches import PatchRejected, check_no_symlink


@dataclass(frozen=True)
class DependencyDir:
    rel: str
    """Repository-relative path (posix), the same in the worktree."""
    source: Path
    """The folder in the user's repository, resolved (no link left in it)."""


@dataclass(frozen=True)
class DependencyDirs:
    dirs: tuple[DependencyDir, ...] = ()
    refused: tuple[str, ...] = ()
    """One message per folder named but not made visible because it is unsafe (never for one that is
    simply absent or tracked)."""
    refused_paths: tuple[str, ...] = ()
    """The refused folders that exist (a link out of the repository): never copied into the worktree
    either, as an untracked link would be."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.rel for d in self.dirs)

    @property
    def never_copied(self) -> tuple[str, ...]:
        """Untracked folders the worktree's snapshot leaves out: the bound ones and the refused ones."""
        return (*self.names, *self.refused_paths)


NO_DEPENDENCY_DIRS = DependencyDirs()


def resolve_dependency_dirs(repo_root: Path, names: Sequence[str]) -> DependencyDirs:
    """The folders of `names` that may be shown to checks; see the module docstring."""
    root = repo_root.resolve()
    candidates: list[DependencyDir] = []
    refused: list[str] = []
    refused_paths: list[str] = []
    for name in dict.fromkeys(names):
        problem = dependency_dir_problem(name) or ("must not be or be inside .git" if is_git_internal(name) else None)
        if problem is not None:
            refused.append(f"dependency folder {name!r} {problem}; not made visible to checks")
            continue
        path = repo_root / name
        if not os.path.lexists(path):
            continue  # not installed: nothing to show
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            resolved = None
        if resolved is None or resolved == root or not resolved.is_relative_to(root) or is_git_internal(
                resolved.relative_to(root).as_posix()):
            where = "is a broken or looping link" if resolved is None else f"resolves to {resolved}, outside the repository"
            refused.append(f"dependency folder {name} {where}: not made visible to checks")
            refused_paths.append(name)
            continue
        if not resolved.is_dir():
            continue  # a file of that name: nothing installed there
        candidates.append(DependencyDir(name, resolved))
    if candidates:
        tracked = _tracked_under(repo_root, [d.rel for d in candidates])
        candidates = [d for d in candidates if d.rel not in tracked]
    return DependencyDirs(tuple(candidates), tuple(refused), tuple(refused_paths))


def _tracked_under(repo_root: Path, rels: list[str]) -> set[str]:
    """Which of `rels` git tracks something under (such a folder is in the worktree already)."""
    try:
        proc = run_git(repo_root, ["ls-files", "-z", "--", *rels], env={"GIT_LITERAL_PATHSPECS": "1"})
    except WorkspaceError:
        return set(rels)  # cannot tell: bind nothing rather than hide tracked files under a mount
    found = [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]
    return {rel for rel in rels if any(p == rel or p.startswith(rel + "/") for p in found)}


def _parent_is_real(worktree: Path, rel: str) -> bool:
    parent = str(PurePosixPath(rel).parent)
    if parent == ".":
        return True
    try:
        check_no_symlink(worktree, parent)
    except PatchRejected:
        return False
    return (worktree / parent).is_dir()


def _places(deps: DependencyDirs, worktree: Path) -> Iterator[tuple[DependencyDir, Path, os.stat_result | None]]:
    """Each folder's place in the worktree whose parents are real directories, with what stands
    there now (`lstat`, never followed; None when nothing does)."""
    for dep in deps.dirs:
        if not _parent_is_real(worktree, dep.rel):
            continue
        target = worktree / dep.rel
        try:
            info: os.stat_result | None = os.lstat(target)
        except FileNotFoundError:
            info = None
        except OSError:
            continue  # unreadable: leave it alone
        yield dep, target, info


def bwrap_binds(deps: DependencyDirs, worktree: Path) -> list[str]:
    """bubblewrap arguments that bind each folder read-only at its place in the worktree (after the
    worktree's own writable bind, so they cover it). The mount point is made here, as a real empty
    directory; a link of ours left by an unsandboxed command is replaced by it first."""
    args: list[str] = []
    for dep, target, found in _places(deps, worktree):
        info = found
        if info is not None and stat.S_ISLNK(info.st_mode):
            target.unlink()
            info = None
        if info is None:
            with contextlib.suppress(FileExistsError):
                target.mkdir()
        elif not stat.S_ISDIR(info.st_mode):
            continue  # a file of the user's stands there: leave it
        args += ["--ro-bind", str(dep.source), str(target)]
    return args


def link_dependency_dirs(deps: DependencyDirs, worktree: Path) -> None:
    """Without the sandbox: a symlink to each folder where the worktree has nothing of that name yet
    (an empty mount point a sandboxed command left is replaced). Idempotent; the links stay until
    `unlink_dependency_dirs` or the pool's reset, which removes them as untracked entries."""
    for dep, target, info in _places(deps, worktree):
        if info is not None and stat.S_ISDIR(info.st_mode):
            with contextlib.suppress(OSError):
                target.rmdir()  # only when empty: a mount point; a folder a check filled stays
            if os.path.lexists(target):
                continue
        elif info is not None:
            continue  # a link (ours, made already) or a file: leave it
        with contextlib.suppress(FileExistsError):
            os.symlink(dep.source, target, target_is_directory=True)


def unlink_dependency_dirs(deps: DependencyDirs, worktree: Path) -> None:
    """Remove the links `link_dependency_dirs` made (only a link to the folder, never through it)."""
    for dep, target, info in _places(deps, worktree):
        if info is not None and stat.S_ISLNK(info.st_mode):
            with contextlib.suppress(OSError):
                if os.readlink(target) == str(dep.source):
                    target.unlink()
