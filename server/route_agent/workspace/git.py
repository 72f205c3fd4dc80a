"""The git CLI, hardened, and the change set it reports.

Every call runs with `core.fsmonitor=false` and `core.hooksPath=/dev/null` (a repository-local
fsmonitor runs any command on a plain `git status`), without external diff drivers or textconv, with
every diff format setting pinned (a `.git/config` with `diff.noprefix` cannot change what we parse), with
`GIT_OPTIONAL_LOCKS=0` so that reading never takes the index lock from the user, and with no prompt.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from route_agent.signals.changeset import MODE_GITLINK, MODE_SYMLINK, ChangedFile, ChangeSet, FileStatus
from route_agent.signals.diffparse import DiffParseError, parse_diff_lines
from route_agent.signals.editor_files import is_editor_artefact
from route_agent.signals.paths import skeleton

__all__ = [
    "Repo", "StatusListing", "WorkspaceError", "collect_change_set", "collect_changes", "open_repo", "parse_diff_lines", "read_blobs",
    "read_head_blobs", "run_git",
]

HARDENING = (
    "-c", "core.fsmonitor=false",
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.quotePath=off",
    "-c", "diff.external=",
    "-c", "core.pager=cat",
    "-c", "color.ui=false",
    "-c", "protocol.file.allow=user",
    # Diff output is parsed and applied again: a repository's .git/config may not change its format
    # (noprefix/mnemonicPrefix headers, zero context, a relative root, colour, blank-line trimming).
    "-c", "color.diff=false",
    "-c", "diff.noprefix=false",
    "-c", "diff.mnemonicPrefix=false",
    "-c", "diff.srcPrefix=a/",
    "-c", "diff.dstPrefix=b/",
    "-c", "diff.relative=false",
    "-c", "diff.context=3",
    "-c", "diff.interHunkContext=0",
    "-c", "diff.suppressBlankEmpty=false",
    "-c", "diff.orderFile=/dev/null",
    "-c", "apply.whitespace=nowarn",
    "-c", "apply.ignoreWhitespace=no",
)
DIFF_FORMAT = ("--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/")
"""Flags every `git diff` route-agent parses passes besides the pinned configuration above."""
MAX_FILE_BYTES = 1024 * 1024
"""Files larger than this are not read whole for signals (they are marked truncated)."""
MAX_LINE_CHARS = 4096


class WorkspaceError(Exception):
    """A problem with the user's workspace that they must fix; the message says how."""


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    identity = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in identity}
    env.update({"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_NO_REPLACE_OBJECTS": "1"})
    if extra:
        env.update(extra)
    return env


def git_executable() -> str:
    found = shutil.which("git")
    if found is None:
        raise WorkspaceError("git was not found on PATH; install git (for example `apt-get install git`) and try again")
    return found


def run_git(cwd: Path, args: Sequence[str], *, check: bool = True, input_bytes: bytes | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 120.0,
            config: Sequence[str] = ()) -> subprocess.CompletedProcess[bytes]:
    argv = [git_executable(), *HARDENING, *config, *args]
    try:
        proc = subprocess.run(argv, cwd=cwd, input=input_bytes, capture_output=True, env=git_env(env), timeout=timeout, check=False)
    except FileNotFoundError:
        raise WorkspaceError("git was not found on PATH; install git and try again") from None
    except NotADirectoryError:
        raise WorkspaceError(f"{cwd} is not a directory") from None
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"git {args[0]} took longer than {timeout:.0f} s in {cwd}") from None
    if check and proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise WorkspaceError(f"git {args[0]} failed in {cwd}: {message[-1] if message else f'exit {proc.returncode}'}")
    return proc


@dataclass(frozen=True)
class Repo:
    root: Path
    git_dir: Path
    head: str
    branch: str | None
    """The checked-out branch; None when HEAD is detached (a CI checkout of a pull request)."""
    config: tuple[str, ...] = ()
    """Extra `-c` settings for commands that may convert content (status, diff): see
    `filter_overrides`."""


def is_git_dir_name(part: str) -> bool:
    """A path component git or a filesystem would take for `.git`, or that imitates it: any case,
    trailing dots or spaces, an NTFS stream suffix (`.git::$INDEX_ALLOCATION`), the 8.3 short name
    `git~1`, invisible characters (zero-width, bidi; HFS+ ignores some) and look-alike letters
    (Cyrillic, Greek, fullwidth)."""
    visible = "".join(ch for ch in part if unicodedata.category(ch) not in ("Cf", "Cc", "Mn", "Zs") or ch == " ")
    folded = skeleton(visible).split(":", 1)[0].rstrip(". ")
    return folded == ".git" or folded.startswith(".git~") or folded.startswith("git~")


def is_git_internal(rel: str) -> bool:
    """A repository-relative path inside git's own directory; never part of a change set."""
    return any(is_git_dir_name(part) for part in rel.replace("\\", "/").split("/"))


def filter_overrides(cwd: Path) -> tuple[str, ...]:
    """`-c` settings that switch off every configured clean/smudge filter.

    A filter driver named in `.gitattributes` runs its configured command when `git status` or
    `git diff` reads a file; a repository-local `.git/config` can point it at anything. Reading the
    configuration runs nothing, so list the drivers and blank them for our calls.
    """
    proc = run_git(cwd, ["config", "-z", "--get-regexp", r"^filter\."], check=False)
    names: set[str] = set()
    for entry in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
        key = entry.split("\n", 1)[0]
        if key.startswith("filter.") and key.count(".") >= 2:
            names.add(key[len("filter."):key.rindex(".")])
    out: list[str] = []
    for name in sorted(names):
        for setting in ("clean=", "smudge=", "process=", "required=false"):
            out += ["-c", f"filter.{name}.{setting}"]
    return tuple(out)


def open_repo(path: Path) -> Repo:
    """Find the repository containing `path`; refuse states route-agent cannot work from."""
    if not path.exists():
        raise WorkspaceError(f"{path} does not exist")
    cwd = path if path.is_dir() else path.parent
    git_executable()
    # One call: the top level, the git directory and HEAD's commit (exit 1, with the first two, when
    # there is no commit yet).
    proc = run_git(cwd, ["rev-parse", "--show-toplevel", "--absolute-git-dir", "-q", "--verify", "HEAD^{commit}"], check=False)
    if proc.returncode not in (0, 1):
        err = proc.stderr.decode("utf-8", "replace")
        if "not a git repository" in err:
            raise WorkspaceError(f"{cwd} is not inside a git repository; run route-agent in a repository (or `git init` one)")
        if "dubious ownership" in err:
            raise WorkspaceError(f"git refuses {cwd}: dubious ownership; mark it safe with "
                                 f"`git config --global --add safe.directory {cwd}` if you trust it")
        raise WorkspaceError(f"git cannot read {cwd}: {err.strip() or 'unknown error'}")
    lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    if len(lines) < 2 or not lines[0]:
        raise WorkspaceError(f"{cwd} is inside a git directory, not a work tree; run route-agent from the repository's files")
    root, git_dir = Path(lines[0]), Path(lines[1])
    head_ref = _read_head(git_dir)
    if proc.returncode != 0 or len(lines) < 3:
        raise WorkspaceError(f"the repository at {root} has no commits yet; commit something first "
                             "(route-agent compares changes against HEAD)")
    # A detached HEAD (how CI systems check out a pull request) is fine: worktrees and patches are
    # based on the commit, never on a branch name.
    branch = head_ref[5:].strip().removeprefix("refs/heads/") if head_ref.startswith("ref: ") else None
    return Repo(root=root, git_dir=git_dir, head=lines[2].strip(), branch=branch,
                config=filter_overrides(root))


def _read_head(git_dir: Path) -> str:
    try:
        return (git_dir / "HEAD").read_text("utf-8", "replace").strip()
    except OSError as exc:
        raise WorkspaceError(f"cannot read {git_dir / 'HEAD'}: {exc.strerror}") from None


@dataclass(frozen=True)
class _StatusEntry:
    path: str
    status: FileStatus
    old_path: str | None
    head_mode: str | None
    work_mode: str | None
    head_oid: str | None = None
    """The HEAD blob's object name, when status gives it (ordinary changed entries)."""


_NULL_OID = frozenset({"0" * 40, "0" * 64})


def _parse_status_v2(raw: bytes) -> tuple[list[_StatusEntry], list[str]]:
    entries: list[_StatusEntry] = []
    untracked_dirs: list[str] = []
    fields = raw.split(b"\0")
    i = 0
    while i < len(fields):
        field = fields[i].decode("utf-8", "surrogateescape")
        i += 1
        if not field:
            continue
        kind = field[0]
        if kind == "1":
            # 1 XY sub mH mI mW hH hI path
            parts = field.split(" ", 8)
            xy, m_head, m_work, h_head, path = parts[1], parts[3], parts[5], parts[6], parts[8]
            oid = None if h_head in _NULL_OID else h_head
            entries.append(_StatusEntry(path, _status_from_xy(xy), None, _mode(m_head), _mode(m_work), oid))
        elif kind == "2":
            parts = field.split(" ", 9)
            m_head, m_work, path = parts[3], parts[5], parts[9]
            old = fields[i].decode("utf-8", "surrogateescape")
            i += 1
            status: FileStatus = "renamed" if parts[8].startswith("R") else "copied"
            entries.append(_StatusEntry(path, status, old, _mode(m_head), _mode(m_work)))
        elif kind == "u":
            parts = field.split(" ", 10)
            entries.append(_StatusEntry(parts[10], "modified", None, _mode(parts[3]), _mode(parts[6])))
        elif kind == "?":
            path = field[2:]
            if path.endswith("/"):
                untracked_dirs.append(path)
            else:
                entries.append(_StatusEntry(path, "untracked", None, None, None))
    return entries, untracked_dirs


def _mode(raw: str) -> str | None:
    return None if raw == "000000" else raw


def _status_from_xy(xy: str) -> FileStatus:
    if "D" in xy and "A" not in xy:
        return "deleted"
    if xy[0] == "A":
        return "added"
    if "T" in xy:
        return "typechange"
    return "modified"


@dataclass(frozen=True)
class StatusListing:
    """The paths the change set's `git status` named, and when it ran. A run's worktree snapshot
    copies these instead of asking git again: a status walks the whole tree (0.1-0.3 s at 34k files)."""

    head: str
    tracked: tuple[str, ...]
    """Tracked paths that differ from HEAD (staged or not), deleted ones included; no submodule."""
    untracked: tuple[str, ...]
    """Every untracked, not ignored file, editor lock/swap/backup files left out; not cut at the
    change set's `max_untracked` (the snapshot applies its own limit)."""
    taken: float
    """`time.monotonic()` just before status ran."""


def collect_change_set(repo: Repo, buffers: Mapping[str, str] | None = None, max_untracked: int = 2000) -> ChangeSet:
    """Staged, unstaged and untracked changes against HEAD, plus unsaved editor buffers (see
    `collect_changes`, which also returns the paths its status named)."""
    return collect_changes(repo, buffers, max_untracked)[0]


def collect_changes(repo: Repo, buffers: Mapping[str, str] | None = None,
                    max_untracked: int = 2000) -> tuple[ChangeSet, StatusListing]:
    """Staged, unstaged and untracked changes against HEAD, plus unsaved editor buffers; and the
    paths the status named (`StatusListing`, what a worktree snapshot of this state copies).

    `buffers` maps repository-relative paths to the text an editor holds; those contents count
    instead of the file on disk.

    Cost is one `git status` plus little: status names each changed file's HEAD blob, a
    `git cat-file --batch` started alongside status reads those blobs, and the changed lines come
    from comparing them with the files on disk. A pathspec-limited `git diff HEAD` would re-read the
    whole index (about 16 ms on 34k files); it is kept only for entries status gives no blob for.
    """
    blobs = _BlobReader(repo.root)  # starts now, so its start-up overlaps with status
    try:
        taken = time.monotonic()
        status = run_git(repo.root, ["status", "--porcelain=v2", "-z", "--branch", "--untracked-files=normal",
                                     "--no-renames", "--ignore-submodules=none"], config=repo.config)
        entries, untracked_dirs = _parse_status_v2(status.stdout)
        notes: list[str] = []
        extra: list[str] = []
        if untracked_dirs:
            listed = run_git(repo.root, ["ls-files", "-z", "--others", "--exclude-standard", "--",
                                         *untracked_dirs])
            extra = [p for p in listed.stdout.decode("utf-8", "surrogateescape").split("\0") if p]
        listing = StatusListing(
            head=_status_head(status.stdout) or repo.head,
            tracked=tuple(e.path for e in entries if e.status != "untracked" and MODE_GITLINK not in (e.head_mode, e.work_mode)),
            untracked=tuple(p for p in [*(e.path for e in entries if e.status == "untracked"), *extra]
                            if not is_editor_artefact(p)),
            taken=taken,
        )
        if extra:
            if len(extra) > max_untracked:
                notes.append(f"{len(extra)} untracked files; only the first {max_untracked} were examined")
                extra = extra[:max_untracked]
            entries.extend(_StatusEntry(p, "untracked", None, None, None) for p in extra)
        # An editor's lock, swap or backup file is not the user's change, ignored by the repository or not.
        entries = [e for e in entries if e.status != "untracked" or not is_editor_artefact(e.path)]
        tracked = [e for e in entries if e.status != "untracked"]
        direct = [e for e in tracked if e.head_oid is not None or e.head_mode is None]
        head_text = blobs.read([e.head_oid for e in direct if e.head_oid and e.head_mode != MODE_GITLINK])
    finally:
        blobs.close()
    via_git = [e.path for e in tracked if not (e.head_oid is not None or e.head_mode is None)]
    diffs = _diff_hunks(repo, via_git) if via_git else {}
    files: list[ChangedFile] = []
    for entry in entries:
        if entry.status == "untracked":
            files.append(_untracked_file(repo.root, entry.path))
            continue
        truncated = False
        if entry.path in diffs or entry.path in via_git:
            added, removed, binary = diffs.get(entry.path) or ((), (), False)
        else:
            old = head_text.get(entry.head_oid) if entry.head_oid else b""
            new, truncated = _worktree_bytes(repo.root, entry.path, entry.work_mode)
            added, removed, binary = _compare(old or b"", new)
        files.append(ChangedFile(path=entry.path, status=entry.status, added=added, removed=removed,
                                 old_path=entry.old_path, old_mode=entry.head_mode,
                                 new_mode=entry.work_mode, binary=binary, truncated=truncated))
    buffers = {rel: text for rel, text in (buffers or {}).items() if not is_git_internal(rel)}  # .git/ is git's, not a change
    if buffers:
        known = {f.path for f in files if f.status != "untracked"}
        files = _apply_buffers(repo, files, {rel: text for rel, text in buffers.items()
                                             if rel in known or not is_editor_artefact(rel)})
    return ChangeSet(files=tuple(sorted(files, key=lambda f: f.path)), base=repo.head, notes=tuple(notes)), listing


def _status_head(raw: bytes) -> str | None:
    """The commit `git status --branch` compared against (None before the first commit)."""
    start = raw.find(b"# branch.oid ")
    if start < 0:
        return None
    oid = raw[start + len(b"# branch.oid "):raw.find(b"\0", start)].decode("ascii", "replace").strip()
    return None if oid == "(initial)" else oid


class _BlobReader:
    """`git cat-file --batch`, started early; `read` sends object names and parses the blobs."""

    def __init__(self, root: Path) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self._proc = subprocess.Popen(
                [git_executable(), *HARDENING, "cat-file", "--batch"], cwd=root, env=git_env(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise WorkspaceError(f"cannot run git cat-file in {root}: {exc.strerror}") from None

    def read(self, oids: list[str]) -> dict[str, bytes]:
        proc, self._proc = self._proc, None
        if proc is None:
            return {}
        try:
            data, _ = proc.communicate("".join(f"{o}\n" for o in oids).encode("ascii"), timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise WorkspaceError("git cat-file took longer than 120 s") from None
        out: dict[str, bytes] = {}
        pos = 0
        for oid in oids:
            end = data.find(b"\n", pos)
            if end < 0:
                break
            header = data[pos:end].split(b" ")
            pos = end + 1
            if len(header) != 3:
                continue  # "<oid> missing"
            size = int(header[2])
            out[oid] = data[pos : pos + min(size, MAX_FILE_BYTES)]
            pos += size + 1
        return out

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.communicate()


def _worktree_bytes(root: Path, rel: str, mode: str | None) -> tuple[bytes, bool]:
    if mode is None or mode == MODE_GITLINK:
        return b"", False
    full = root / rel
    try:
        if mode == MODE_SYMLINK:
            return os.fsencode(os.readlink(full)), False  # git's content for a link is its target
        return _read_bounded(full)
    except OSError:
        return b"", False


def _compare(old: bytes, new: bytes) -> tuple[Lines, Lines, bool]:
    if b"\0" in old[:8000] or b"\0" in new[:8000]:
        return (), (), True
    old_lines = old.decode("utf-8", "replace").splitlines()
    new_lines = new.decode("utf-8", "replace").splitlines()
    added, removed = line_changes(old_lines, new_lines)
    return added, removed, False


Lines = tuple[tuple[int, str], ...]


def _diff_hunks(repo: Repo, paths: list[str]) -> dict[str, tuple[Lines, Lines, bool]]:
    args = ["diff", "HEAD", *DIFF_FORMAT, "--no-renames", "-U0", "--"]
    proc = run_git(repo.root, [*args, *(":(literal)" + p for p in paths)], config=repo.config)
    try:
        parsed = parse_diff_lines(proc.stdout.decode("utf-8", "surrogateescape"))
    except DiffParseError as exc:
        raise WorkspaceError(str(exc)) from None
    # git C-quotes a name with `"`, `\\` or control characters even with core.quotePath=off.
    return {unquote_git_path(path): lines for path, lines in parsed.items()}


_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def unquote_git_path(name: str) -> str:
    """Undo git's C-style quoting of a path (`"dir/a\\"b.py"`); other names pass through."""
    if len(name) < 2 or name[0] != '"' or name[-1] != '"':
        return name
    body = name[1:-1].encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(body):
        byte = body[i]
        if byte != 0x5C or i + 1 == len(body):
            out.append(byte)
            i += 1
            continue
        nxt = chr(body[i + 1])
        octal = body[i + 1 : i + 4]
        if len(octal) == 3 and all(chr(c) in "01234567" for c in octal):
            out.append(int(octal, 8) & 0xFF)
            i += 4
        elif nxt in _C_ESCAPES:
            out.append(_C_ESCAPES[nxt])
            i += 2
        else:
            out.append(byte)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def _read_bounded(path: Path) -> tuple[bytes, bool]:
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    return data[:MAX_FILE_BYTES], len(data) > MAX_FILE_BYTES


def _untracked_file(root: Path, rel: str) -> ChangedFile:
    full = root / rel
    try:
        st = full.lstat()
    except OSError:
        return ChangedFile(path=rel, status="untracked")
    if os.path.islink(full):
        return ChangedFile(path=rel, status="untracked", new_mode="120000")
    mode = "100755" if st.st_mode & 0o111 else "100644"
    try:
        data, truncated = _read_bounded(full)
    except OSError:
        return ChangedFile(path=rel, status="untracked", new_mode=mode)
    if b"\0" in data[:8192]:
        return ChangedFile(path=rel, status="untracked", new_mode=mode, binary=True)
    text = data.decode("utf-8", "replace")
    lines = tuple((n, line[:MAX_LINE_CHARS]) for n, line in enumerate(text.splitlines(), start=1))
    return ChangedFile(path=rel, status="untracked", added=lines, new_mode=mode, truncated=truncated)


def _apply_buffers(repo: Repo, files: list[ChangedFile], buffers: Mapping[str, str]) -> list[ChangedFile]:
    """Replace the on-disk view of edited files with the editor's unsaved text."""
    by_path = {f.path: f for f in files}
    dirty: dict[str, str] = {}
    for rel, text in buffers.items():
        disk = repo.root / rel
        try:
            data, _ = _read_bounded(disk)
            if data.decode("utf-8", "replace") == text:
                continue
        except OSError:
            pass
        dirty[rel] = text
    if not dirty:
        return files
    head_blobs = read_head_blobs(repo, list(dirty))
    for rel, text in dirty.items():
        base = head_blobs.get(rel)
        new_lines = text.splitlines()
        if base is None:
            added = tuple((n, line[:MAX_LINE_CHARS]) for n, line in enumerate(new_lines, start=1))
            previous = by_path.get(rel)
            status: FileStatus = previous.status if previous else "untracked"
            by_path[rel] = ChangedFile(path=rel, status=status, added=added, unsaved=True,
                                       new_mode=previous.new_mode if previous else "100644")
            continue
        added_l, removed_l = line_changes(base.splitlines(), new_lines)
        previous = by_path.get(rel)
        if not added_l and not removed_l:
            if previous is not None and previous.old_mode == previous.new_mode:
                del by_path[rel]  # the buffer matches HEAD: no change left in this file
            continue
        by_path[rel] = ChangedFile(path=rel, status="modified", added=added_l, removed=removed_l, unsaved=True,
                                   old_mode=previous.old_mode if previous else "100644",
                                   new_mode=previous.new_mode if previous else "100644")
    return list(by_path.values())


MAX_EXACT_DIFF = 4_000_000
"""Above this many line pairs in the differing middle, a file counts as rewritten (difflib's cost
grows with the product of the two sides)."""


def line_changes(old: list[str], new: list[str]) -> tuple[Lines, Lines]:
    """Added and removed lines between two versions of a file, numbered in each version."""
    # An edit usually touches a small middle: skip the common head and tail before difflib.
    head = 0
    limit = min(len(old), len(new))
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    old_mid = old[head : len(old) - tail]
    new_mid = new[head : len(new) - tail]
    if not old_mid or not new_mid or len(old_mid) * len(new_mid) > MAX_EXACT_DIFF:
        removed = tuple((head + i + 1, line[:MAX_LINE_CHARS]) for i, line in enumerate(old_mid))
        added = tuple((head + j + 1, line[:MAX_LINE_CHARS]) for j, line in enumerate(new_mid))
        return added, removed
    added_l: list[tuple[int, str]] = []
    removed_l: list[tuple[int, str]] = []
    matcher = difflib.SequenceMatcher(a=old_mid, b=new_mid, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed_l.extend((head + i + 1, old_mid[i][:MAX_LINE_CHARS]) for i in range(i1, i2))
        if tag in ("replace", "insert"):
            added_l.extend((head + j + 1, new_mid[j][:MAX_LINE_CHARS]) for j in range(j1, j2))
    return tuple(added_l), tuple(removed_l)


def read_blobs(repo: Repo, commit: str, paths: list[str]) -> dict[str, bytes | None]:
    """Each path's bytes at `commit`, None where it does not exist there (one `git cat-file --batch`)."""
    request = "".join(f"{commit}:{p}\n" for p in paths).encode("utf-8", "surrogateescape")
    data = run_git(repo.root, ["cat-file", "--batch"], input_bytes=request).stdout
    out: dict[str, bytes | None] = {}
    pos = 0
    for path in paths:
        end = data.index(b"\n", pos)
        header = data[pos:end].decode("utf-8", "replace")
        pos = end + 1
        if header.endswith((" missing", " ambiguous")):
            out[path] = None
            continue
        size = int(header.rsplit(" ", 1)[1])
        out[path] = data[pos : pos + size]
        pos += size + 1
    return out


def read_head_blobs(repo: Repo, paths: list[str]) -> dict[str, str]:
    """The HEAD text of each path that exists there and is not binary."""
    return {path: blob.decode("utf-8", "replace") for path, blob in read_blobs(repo, "HEAD", paths).items()
            if blob is not None and b"\0" not in blob[:8192]}
