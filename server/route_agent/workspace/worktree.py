"""Isolated git worktrees for patches, stored runs, and moving an accepted patch to the user's tree.

    create_worktree(repo, worktree_id=None) -> Worktree(id, path, base, head, repo_root)
    remove_worktree(repo, worktree) -> None
    prune_stale_worktrees(repo) -> list[Path]          # call at start; returns what it removed
    save_run(repo, run_id, diff_text, base_commit, meta=None) -> Path      # state_dir()/runs/<id>/
    stage_run(repo, run_id, diff_text, base_commit) -> StagedRun           # the same, written ahead: .keep(meta) / .discard()
    apply_to_user_tree(repo, run_id) -> ApplyResult(applied, paths, merged, conflicts, message)
    (re-exported from patches.py: apply_patch_in_worktree, extract_patch, PatchRejected)

A worktree is checked out (detached) at the user's HEAD, then the user's uncommitted state is laid
over it: the files `git status` reports as changed or untracked are copied in (ignored directories
are never read), an editor's unsaved buffers are written, and only those paths are staged and
committed inside the worktree, so the model's patch is the only difference from the worktree's HEAD.
The user's files, index and refs are never written. Routed runs lease a reused worktree from a small
pool per repository (pool.py) and reset it the same way; `create_worktree` makes a one-off worktree
in state_dir()/worktrees/<id>, with `<id>.owner.json` naming the process that owns it;
`prune_stale_worktrees` removes one-off worktrees whose owner is gone and prunes the pool.

A run stores `patch.diff`, `meta.json` and, for every touched path, its base and patched text
(`files/<n>.base`, `files/<n>.after`), with a SHA-256 `digest` of all of them taken when it was
verified. `apply_to_user_tree` first checks the stored run is what was verified (paths exactly the
patch's, patched text = patch applied to base, digest equal) and refuses otherwise, naming the run
and the file; then it writes a file whose current text still
equals the base; a file the user changed since is merged three ways with `git merge-file`; any
conflict (or a path that became a symlink) is reported and nothing at all is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from route_agent.workspace.git import (
    Repo,
    StatusListing,
    WorkspaceError,
    filter_overrides,
    is_git_internal,
    read_blobs,
    run_git,
)
from route_agent.workspace.patches import (
    PatchRejected,
    PatchRejectedError,
    apply_patch_in_worktree,
    check_no_symlink,
    check_path,
    diff_paths,
    extract_patch,
)
from route_agent.workspace.safefs import make_symlink, remove_file, write_file
from route_agent.workspace.state import make_private, state_dir

_COMMIT_CONFIG = ("-c", "user.name=route-agent", "-c", "user.email=route-agent@localhost", "-c", "commit.gpgsign=false")
MAX_UNTRACKED_COPY = 5000


@dataclass(frozen=True)
class Worktree:
    id: str
    path: Path
    base: str
    """The worktree's HEAD: the user's base commit plus their uncommitted and untracked files."""
    head: str
    """The user's HEAD when the worktree was made."""
    repo_root: Path
    copied: tuple[str, ...] = ()
    """Paths holding the user's uncommitted state (changed and untracked files, unsaved buffers)."""
    config: tuple[str, ...] | None = None
    """The `-c` settings the snapshot was made with (every filter driver off): still right until
    repository code (a check, an agent) runs in the worktree; None = read them again."""


@dataclass(frozen=True)
class ApplyResult:
    applied: bool
    paths: tuple[str, ...] = ()
    merged: tuple[str, ...] = ()
    """Paths the user had changed since the base, merged three ways."""
    conflicts: tuple[str, ...] = ()
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def worktrees_dir() -> Path:
    path = state_dir() / "worktrees"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = state_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _owner_file(path: Path) -> Path:
    return path.with_name(path.name + ".owner.json")


def create_worktree(repo: Repo, worktree_id: str | None = None, buffers: Mapping[str, str] | None = None) -> Worktree:
    """A fresh detached worktree of the user's current state; the user's files and index are not touched.

    `buffers` (repository-relative path -> text) are an editor's unsaved documents: they replace the
    files on disk in the worktree, so the model's patch applies to the text it was shown and the
    stored base is what the editor holds. Routed runs lease a reused worktree instead (pool.py).
    """
    wid = worktree_id or uuid.uuid4().hex[:12]
    if not wid.replace("-", "").isalnum():
        raise WorkspaceError(f"worktree id {wid!r} must be letters, digits and dashes")
    path = worktrees_dir() / wid
    if path.exists():
        raise WorkspaceError(f"worktree {path} already exists")
    _owner_file(path).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                             "repo": str(repo.root), "created": time.time()}))
    try:
        head = current_head(repo)
        add_worktree(repo, path, head)
        return snapshot_into(repo, path, head, buffers or {}, worktree_id=wid)
    except BaseException:
        _remove_path(repo, path)
        raise


def current_head(repo: Repo) -> str:
    """The user's HEAD commit now (it may have moved since `open_repo`)."""
    proc = run_git(repo.root, ["rev-parse", "-q", "--verify", "HEAD^{commit}"], check=False)
    head = proc.stdout.decode().strip()
    return head or repo.head


def add_worktree(repo: Repo, path: Path, commit: str) -> Path:
    """`git worktree add` (the full checkout: the cold, slow step) with no filter driver or hook; returns the
    worktree's administrative directory inside the user's .git."""
    run_git(repo.root, ["worktree", "add", "--detach", "--force", str(path), commit], config=filter_overrides(repo.root))
    return admin_dir(path)


def admin_dir(path: Path) -> Path:
    """The `.git/worktrees/<name>` directory a worktree's `.git` file points at."""
    text = (path / ".git").read_text("utf-8", "surrogateescape").strip()
    if not text.startswith("gitdir: "):
        raise WorkspaceError(f"{path / '.git'} is not a worktree's .git file")
    return Path(text[len("gitdir: "):])


def worktree_env(path: Path, admin: Path) -> dict[str, str]:
    """Git's environment for commands in a worktree: its admin directory named explicitly, so a `.git`
    file a check rewrote inside the worktree cannot point our git at another repository."""
    return {"GIT_DIR": str(admin), "GIT_WORK_TREE": str(path)}


@dataclass(frozen=True)
class UserChanges:
    head: str
    tracked: tuple[str, ...]
    """Tracked paths that differ from HEAD (staged or not), deleted ones included."""
    untracked: tuple[str, ...]
    """Untracked, not ignored files (ignored directories are never read)."""
    truncated: int = 0


def read_user_changes(repo: Repo, skip_untracked: Sequence[str] = ()) -> UserChanges:
    """One `git status` of the user's tree: what the snapshot must add to HEAD. `skip_untracked` are
    untracked folders never copied nor read (installed dependencies the checks see through a bind)."""
    excludes = [f":(exclude,literal){rel}" for rel in skip_untracked]
    proc = run_git(repo.root, ["status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all", "--no-renames",
                               "--ignore-submodules=all", *(("--", ".", *excludes) if excludes else ())], config=repo.config)
    head = repo.head
    tracked: list[str] = []
    untracked: list[str] = []
    for raw in proc.stdout.split(b"\0"):
        field_ = raw.decode("utf-8", "surrogateescape")
        if field_.startswith("# branch.oid "):
            oid = field_[len("# branch.oid "):].strip()
            head = oid if oid != "(initial)" else head
        elif field_.startswith("1 "):
            tracked.append(field_.split(" ", 8)[8])
        elif field_.startswith("u "):
            tracked.append(field_.split(" ", 10)[10])
        elif field_.startswith("? "):
            untracked.append(field_[2:])
    return _capped(head, tracked, untracked)


def user_changes_from(listing: StatusListing, skip_untracked: Sequence[str] = ()) -> UserChanges:
    """`read_user_changes` from a status that already ran (the change set's), without asking git again."""
    skipped = tuple(rel.rstrip("/") + "/" for rel in skip_untracked)
    untracked = [p for p in listing.untracked if not p.startswith(skipped) and p + "/" not in skipped]
    return _capped(listing.head, listing.tracked, untracked)


def _capped(head: str, tracked: Sequence[str], untracked: Sequence[str]) -> UserChanges:
    over = max(0, len(untracked) - MAX_UNTRACKED_COPY)
    return UserChanges(head, tuple(tracked), tuple(untracked[:MAX_UNTRACKED_COPY]), over)


def snapshot_into(repo: Repo, path: Path, head: str, buffers: Mapping[str, str], *, worktree_id: str | None = None,
                  changes: UserChanges | None = None, admin: Path | None = None,
                  config: tuple[str, ...] | None = None, unstaged_removals: Sequence[str] = (),
                  worktree_head: str | None = None) -> Worktree:
    """Make the worktree at `path` (its files and index at `head`, except the paths this copies)
    hold the user's current state and commit it.

    Only the files that differ from HEAD are copied (changed tracked files, untracked files, unsaved
    buffers) and staged by name: nothing here walks the whole tree. `unstaged_removals` are paths
    already deleted from the worktree whose index entries go in the same update. A listed path that
    could not be copied (gone or replaced since it was listed) is checked out from `head` instead.
    The commit is made in the worktree's own detached HEAD (now `worktree_head`, default `head`),
    so the model's patch is the only difference from it afterwards.
    """
    admin = admin or admin_dir(path)
    env = worktree_env(path, admin)
    cfg = filter_overrides(repo.root) if config is None else config  # no filter driver of the repository runs on the copy
    changes = changes or read_user_changes(repo)
    listed = [*changes.tracked, *changes.untracked]
    staged = _copy_user_files(repo, path, listed)
    if len(staged) < len(listed):
        _restore_from(path, env, cfg, head, sorted(set(listed) - set(staged)))
    staged += _write_buffers(path, buffers)
    base = head
    if staged or unstaged_removals:
        listing = "".join(f"{p}\0" for p in dict.fromkeys([*unstaged_removals, *staged])).encode("utf-8", "surrogateescape")
        run_git(path, ["update-index", "--add", "--remove", "-z", "--stdin"], input_bytes=listing, env=env, config=cfg)
    if staged:
        tree = run_git(path, ["write-tree"], env=env, config=cfg).stdout.decode().strip()
        message = "route-agent: your uncommitted changes, untracked files and unsaved buffers"
        commit = run_git(path, [*_COMMIT_CONFIG, "commit-tree", "--no-gpg-sign", tree, "-p", head, "-m", message], env=env, config=cfg)
        base = commit.stdout.decode().strip()
    if base != (worktree_head or head):
        run_git(path, ["update-ref", "--no-deref", "HEAD", base], env=env, config=cfg)
    return Worktree(id=worktree_id or path.name, path=path, base=base, head=head, repo_root=repo.root, copied=tuple(staged),
                    config=tuple(cfg))


def _restore_from(path: Path, env: Mapping[str, str], cfg: Sequence[str], commit: str, paths: list[str]) -> None:
    """Check out `paths` (file and index entry) as `commit` has them; a path it lacks is removed."""
    listing = "".join(f"{p}\0" for p in paths).encode("utf-8", "surrogateescape")
    for rel in paths:
        check_path(rel)
        if "/" in rel:
            check_no_symlink(path, str(PurePosixPath(rel).parent))
        target = path / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            remove_file(path, rel)
    literal = {**env, "GIT_LITERAL_PATHSPECS": "1"}
    run_git(path, ["rm", "-q", "-r", "--cached", "--ignore-unmatch", "--pathspec-from-file=-", "--pathspec-file-nul"],
            input_bytes=listing, env=literal, config=cfg)
    probe = "".join(f"{commit}:{p}\n" for p in paths).encode("utf-8", "surrogateescape")
    found = run_git(path, ["cat-file", "--batch-check"], input_bytes=probe, env=env, config=cfg).stdout.splitlines()
    present = [p for p, line in zip(paths, found, strict=False) if not line.endswith((b" missing", b" ambiguous"))]
    if present:
        run_git(path, ["checkout", "-f", "-q", commit, "--pathspec-from-file=-", "--pathspec-file-nul"],
                input_bytes="".join(f"{p}\0" for p in present).encode("utf-8", "surrogateescape"), env=literal, config=cfg)


def _copy_user_files(repo: Repo, dest: Path, paths: list[str]) -> list[str]:
    """Copy each path's current state (file, link or absence) from the user's tree into `dest`,
    through safefs: no directory on the way in the worktree may be a link."""
    copied: list[str] = []
    for rel in paths:
        check_path(rel)
        source = repo.root / rel
        try:
            info: os.stat_result | None = os.lstat(source)
        except OSError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            continue  # a submodule or nested repository: not copied (as `git worktree add` does not)
        if "/" in rel:
            check_no_symlink(dest, str(PurePosixPath(rel).parent))
        target = dest / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # a directory the user replaced with a file
        else:
            remove_file(dest, rel)
        if info is None:
            copied.append(rel)  # deleted in the user's tree
        elif stat.S_ISLNK(info.st_mode):
            make_symlink(dest, rel, os.readlink(source))  # copied as a link; patches through it are refused
            copied.append(rel)
        elif stat.S_ISREG(info.st_mode):
            try:
                with open(source, "rb", opener=_open_no_follow) as handle:
                    write_file(dest, rel, handle, mode=stat.S_IMODE(info.st_mode))
            except OSError:
                continue  # replaced by a link or removed since it was listed: not copied
            copied.append(rel)
    return copied


def _open_no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _write_buffers(dest: Path, buffers: Mapping[str, str]) -> list[str]:
    written: list[str] = []
    for rel, text in buffers.items():
        if is_git_internal(rel):
            continue  # an open .git/config is not part of the change (issue 12, item 14)
        check_path(rel)
        check_no_symlink(dest, rel)
        write_file(dest, rel, text.encode("utf-8", "surrogateescape"))
        written.append(rel)
    return written


def remove_worktree(repo: Repo, worktree: Worktree) -> None:
    _remove_path(repo, worktree.path)


def _remove_path(repo: Repo, path: Path) -> None:
    if path.exists():
        run_git(repo.root, ["worktree", "remove", "--force", "--force", str(path)], check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    _owner_file(path).unlink(missing_ok=True)
    run_git(repo.root, ["worktree", "prune"], check=False)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_stale_worktrees(repo: Repo, max_orphan_age_s: float = 3600.0) -> list[Path]:
    """Remove this repository's worktrees whose owning process is gone; then `git worktree prune`."""
    removed: list[Path] = []
    root = worktrees_dir()
    host = socket.gethostname()
    for owner in sorted(root.glob("*.owner.json")):
        path = root / owner.name.removesuffix(".owner.json")
        try:
            info = json.loads(owner.read_text("utf-8"))
        except (OSError, ValueError):
            info = {}
        if info.get("repo") not in (None, str(repo.root)):
            continue
        pid = info.get("pid")
        stale = not isinstance(pid, int) or (info.get("host") == host and not process_alive(pid))
        if stale:
            _remove_path(repo, path)
            removed.append(path)
    for path in root.iterdir():
        orphan = path.is_dir() and not _owner_file(path).exists() and time.time() - path.stat().st_mtime > max_orphan_age_s
        if orphan and (path / ".git").is_file() and str(repo.git_dir) in (path / ".git").read_text("utf-8", "replace"):
            _remove_path(repo, path)
            removed.append(path)
    run_git(repo.root, ["worktree", "prune"], check=False)
    return removed


# -- runs ---------------------------------------------------------------------------------------

def run_path(run_id: str) -> Path:
    if not run_id or not run_id.replace("-", "").replace("_", "").isalnum():
        raise WorkspaceError(f"run id {run_id!r} is not valid (letters, digits, - and _)")
    return runs_dir() / run_id


def save_run(repo: Repo, run_id: str, diff_text: str, base_commit: str, meta: dict[str, Any] | None = None) -> Path:
    """Store an accepted patch with the base and patched text of every path it touches."""
    return stage_run(repo, run_id, diff_text, base_commit).keep(meta)


@dataclass
class StagedRun:
    """A run's stored form written ahead, in a hidden folder beside the runs (a run stages its patch
    while the checks run): `keep(meta)` completes it as runs/<run id>, `discard()` removes it."""

    run_id: str
    folder: Path
    record: dict[str, Any]

    def keep(self, meta: dict[str, Any] | None = None) -> Path:
        target = run_path(self.run_id)
        record = {**(meta or {}), **self.record, "saved": time.time()}
        (self.folder / "meta.json").write_text(json.dumps(record, indent=2))
        make_private(self.folder / "meta.json")
        if target.exists():
            shutil.rmtree(target)
        os.replace(self.folder, target)
        return target

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def stage_run(repo: Repo, run_id: str, diff_text: str, base_commit: str) -> StagedRun:
    """Write a patch's stored form (the patch, the base and patched text of every path it touches,
    their digest) into a hidden folder; nothing is a run until `keep`."""
    run_path(run_id)  # a valid id
    paths = diff_paths(diff_text)
    for path in paths:
        check_path(path)
    base = read_blobs(repo, base_commit, paths)
    after = _patched(base, diff_text)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=runs_dir()))
    files: dict[str, dict[str, Any]] = {}
    (tmp / "files").mkdir()
    for n, path in enumerate(paths):
        entry: dict[str, Any] = {"n": n, "base": base.get(path) is not None, "after": after.get(path) is not None}
        if base.get(path) is not None:
            (tmp / "files" / f"{n}.base").write_bytes(base[path] or b"")
        if after.get(path) is not None:
            (tmp / "files" / f"{n}.after").write_bytes(after[path] or b"")
        files[path] = entry
    patch_bytes = diff_text.encode("utf-8", "surrogateescape")
    (tmp / "patch.diff").write_bytes(patch_bytes)
    record = {"run_id": run_id, "repo": str(repo.root), "base_commit": base_commit, "user_head": repo.head,
              "paths": paths, "files": files,
              "digest": run_digest(patch_bytes, {path: (base.get(path), after.get(path)) for path in paths})}
    for written in tmp.rglob("*"):  # the user's code and the model's patch: the user's only
        if written.is_file():
            make_private(written)
    return StagedRun(run_id, tmp, record)


def _patched(base: dict[str, bytes | None], diff_text: str) -> dict[str, bytes | None]:
    """Apply the diff to the base texts in a scratch directory that is no repository."""
    with tempfile.TemporaryDirectory(prefix="route-agent-apply-") as tmp:
        scratch = Path(tmp) / "tree"
        scratch.mkdir()
        for path, data in base.items():
            if data is not None:
                (scratch / path).parent.mkdir(parents=True, exist_ok=True)
                (scratch / path).write_bytes(data)
        proc = run_git(scratch, ["apply", "--recount", "--whitespace=nowarn", "-"],
                       input_bytes=diff_text.encode("utf-8", "surrogateescape"), check=False,
                       env={"GIT_CEILING_DIRECTORIES": tmp})
        if proc.returncode != 0:
            raise PatchRejected("the stored patch does not apply to its base: "
                                + proc.stderr.decode("utf-8", "replace").strip()[:300])
        out: dict[str, bytes | None] = {}
        for path in base:
            file = scratch / path
            out[path] = file.read_bytes() if file.is_file() else None
        return out


def run_digest(patch: bytes, files: Mapping[str, tuple[bytes | None, bytes | None]]) -> str:
    """SHA-256 over what was verified: the patch, and every path with its base and patched text."""
    digest = hashlib.sha256(b"route-agent verified run v1\0" + hashlib.sha256(patch).digest())
    for path in sorted(files):
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
        for data in files[path]:
            digest.update(b"-" if data is None else b"+" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def _verified_images(folder: Path, meta: dict[str, Any], run_id: str) -> dict[str, tuple[bytes | None, bytes | None]]:
    """The stored base and patched text of every path, after checking they are what was verified:
    the paths are exactly the patch's, the patched text is the patch applied to the base, and the
    digest stored at verification matches. Anything else names the run and the file (WorkspaceError)."""
    def refuse(what: str) -> WorkspaceError:
        return WorkspaceError(f"run {run_id} does not match what was verified: {what}; nothing was written "
                              f"(route the task again; the stored run is in {folder})")

    digest = meta.get("digest")
    if not isinstance(digest, str):
        raise refuse("it has no digest of the verified patch (stored by an older route-agent, or edited)")
    try:
        patch = (folder / "patch.diff").read_bytes()
        named = diff_paths(patch.decode("utf-8", "surrogateescape"))
    except (OSError, PatchRejected) as exc:
        raise refuse(f"patch.diff cannot be read ({exc})") from None
    files = meta.get("files")
    listed = [*(files if isinstance(files, dict) else ()), *(meta.get("paths") or ())]
    for path in listed:
        if path not in named:
            raise refuse(f"{path} is not named by the verified patch")
    if not isinstance(files, dict) or meta.get("paths") != named:
        raise refuse("meta.json does not list the paths its patch names")
    images: dict[str, tuple[bytes | None, bytes | None]] = {}
    for path in named:
        entry = files.get(path)
        if not isinstance(entry, dict) or not isinstance(entry.get("n"), int) or isinstance(entry.get("n"), bool):
            raise refuse(f"{path} has no stored entry")
        try:
            base = (folder / "files" / f"{entry['n']}.base").read_bytes() if entry.get("base") else None
            after = (folder / "files" / f"{entry['n']}.after").read_bytes() if entry.get("after") else None
        except OSError:
            raise refuse(f"the stored text of {path} is missing") from None
        images[path] = (base, after)
    try:
        expected = _patched({path: base for path, (base, _) in images.items()}, patch.decode("utf-8", "surrogateescape"))
    except PatchRejected:
        raise refuse("patch.diff does not apply to the stored base texts") from None
    for path, (_, after) in images.items():
        if expected.get(path) != after:
            raise refuse(f"the stored text of {path} is not the verified patch applied to its base")
    if run_digest(patch, images) != digest:
        raise refuse("patch.diff or a stored base text differs from the digest taken at verification")
    return images


def apply_to_user_tree(repo: Repo, run_id: str) -> ApplyResult:
    """Move a stored run's patch into the user's files (never their index); see the module docstring."""
    folder = run_path(run_id)
    try:
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
    except (OSError, ValueError):
        raise WorkspaceError(f"no stored run {run_id} (looked in {folder})") from None
    if not isinstance(meta, dict) or meta.get("repo") != str(repo.root):
        raise WorkspaceError(f"run {run_id} belongs to {meta.get('repo') if isinstance(meta, dict) else '?'}, not {repo.root}")
    images = _verified_images(folder, meta, run_id)
    planned: dict[str, bytes | None] = {}
    merged: list[str] = []
    conflicts: list[str] = []
    for path, (base, after) in images.items():
        check_path(path)
        try:
            check_no_symlink(repo.root, path)
        except PatchRejected as exc:
            conflicts.append(path)
            meta.setdefault("_why", {})[path] = exc.reason
            continue
        target = repo.root / path
        ours = target.read_bytes() if target.is_file() else None
        if ours in (base, after):
            planned[path] = after
            continue
        if ours is None or base is None or after is None:
            conflicts.append(path)  # created, deleted or removed on one side only: no safe merge
            continue
        result, clean = _merge_file(ours, base, after)
        if not clean:
            conflicts.append(path)
            continue
        planned[path] = result
        merged.append(path)
    if conflicts:
        why = meta.get("_why", {})
        detail = ", ".join(f"{p} ({why[p]})" if p in why else p for p in conflicts)
        return ApplyResult(False, tuple(meta["paths"]), tuple(merged), tuple(conflicts),
                           f"not applied: {len(conflicts)} file(s) conflict with your changes since the run: {detail}; "
                           "nothing was written")
    for path, data in planned.items():
        _write_user_file(repo.root, path, data)
    note = f" ({len(merged)} merged with your edits)" if merged else ""
    return ApplyResult(True, tuple(meta["paths"]), tuple(merged), (), f"applied {len(planned)} file(s){note}")


def _merge_file(ours: bytes, base: bytes, theirs: bytes) -> tuple[bytes, bool]:
    with tempfile.TemporaryDirectory(prefix="route-agent-merge-") as tmp:
        files = []
        for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            file = Path(tmp) / name
            file.write_bytes(data)
            files.append(str(file))
        proc = run_git(Path(tmp), ["merge-file", "-p", *files], check=False, env={"GIT_CEILING_DIRECTORIES": tmp})
    if proc.returncode < 0 or proc.returncode > 127:
        raise WorkspaceError("git merge-file failed: " + proc.stderr.decode("utf-8", "replace").strip()[:200])
    return proc.stdout, proc.returncode == 0


def _write_user_file(root: Path, path: str, data: bytes | None) -> None:
    check_no_symlink(root, path)
    if data is None:
        remove_file(root, path)
        return
    write_file(root, path, data)  # a fresh exclusive temp file, no link followed anywhere (safefs)


__all__ = [
    "ApplyResult", "PatchRejected", "PatchRejectedError", "StagedRun", "Worktree", "apply_patch_in_worktree", "apply_to_user_tree",
    "create_worktree", "extract_patch", "prune_stale_worktrees", "remove_worktree", "run_path", "save_run", "stage_run",
]
