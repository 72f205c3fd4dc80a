"""Patches from a model's reply: extract, validate every path, apply in a worktree only.

    extract_patch(reply_text) -> Patch                 # raises PatchRejected
    Patch(kind: "diff" | "search_replace", diff: str, blocks: tuple[SearchReplace, ...], paths)
    validate_paths(patch, root) -> None                # raises PatchRejected
    apply_patch_in_worktree(worktree, patch_or_reply) -> str   # the applied diff; raises PatchRejected
    PatchRejected(reason)   (alias PatchRejectedError)

A reply holds a unified diff in a fenced ```diff block (a bare diff is accepted too) or
SEARCH/REPLACE blocks (the path on the line before `<<<<<<< SEARCH`). Every path is checked before
anything is written: no absolute paths, no `..`, nothing under `.git/`, no control characters or
backslashes, no symlink or submodule modes, no binary patches, and no write through a symlink (every
component is checked with lstat in the worktree). A unified diff goes through `git apply --check`,
then `git apply` (hardened git, in the worktree); SEARCH/REPLACE edits are all computed in memory
and written only when every block matches exactly once. Any failure raises `PatchRejected` and leaves
the worktree as it was.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from route_agent.workspace.git import DIFF_FORMAT, WorkspaceError, filter_overrides, is_git_dir_name, run_git
from route_agent.workspace.safefs import LinkRefused, write_file

if TYPE_CHECKING:
    from route_agent.workspace.worktree import Worktree

MAX_PATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PatchLimits:
    """How many files and bytes a lane's patch may change (the policy's `verification.max_patch_*`)."""

    max_files: int = 200
    max_bytes: int = 1024 * 1024


def check_patch_size(files: int, size: int, limits: PatchLimits) -> None:
    """PatchRejected when a patch changes more files or bytes than the limits allow."""
    if files > limits.max_files:
        raise PatchRejected(f"the patch changes {files:,} files; the policy allows at most {limits.max_files:,} "
                            "(verification.max_patch_files)")
    if size > limits.max_bytes:
        raise PatchRejected(f"the patch is {size:,} bytes; the policy allows at most {limits.max_bytes:,} "
                            "(verification.max_patch_bytes)")


class PatchRejected(Exception):
    """The model's patch cannot be used; `reason` says why (shown to the user, fed to escalation)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


PatchRejectedError = PatchRejected


@dataclass(frozen=True, slots=True)
class SearchReplace:
    path: str
    search: str
    replace: str


@dataclass(frozen=True, slots=True)
class Patch:
    kind: Literal["diff", "search_replace"]
    diff: str = ""
    blocks: tuple[SearchReplace, ...] = ()
    paths: tuple[str, ...] = ()


_FENCE_OPEN = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*(diff|patch|udiff)\b.*$", re.IGNORECASE)
_SR_SEARCH = re.compile(r"^<{5,9} ?SEARCH\s*$")
_SR_DIVIDER = re.compile(r"^={5,9}\s*$")
_SR_REPLACE = re.compile(r"^>{5,9} ?REPLACE\s*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def extract_patch(reply_text: str) -> Patch:
    """The patch in a model's reply, or PatchRejected when there is none (or a malformed one)."""
    if len(reply_text.encode("utf-8", "surrogatepass")) > MAX_PATCH_BYTES:
        raise PatchRejected(f"the reply is larger than {MAX_PATCH_BYTES // (1024 * 1024)} MB")
    lines = reply_text.replace("\r\n", "\n").split("\n")
    diff = _fenced_diff(lines)
    if diff is None and any(_SR_SEARCH.match(line) for line in lines):
        blocks = _search_replace_blocks(lines)
        return Patch("search_replace", blocks=blocks, paths=tuple(dict.fromkeys(b.path for b in blocks)))
    if diff is None:
        diff = _bare_diff(lines)
    if diff is None:
        raise PatchRejected("the reply holds no ```diff block and no SEARCH/REPLACE block")
    if not diff.endswith("\n"):
        diff += "\n"
    return Patch("diff", diff=diff, paths=tuple(diff_paths(diff)))


def _fenced_diff(lines: list[str]) -> str | None:
    found: list[str] = []
    index = 0
    while index < len(lines):
        opened = _FENCE_OPEN.match(lines[index])
        if opened is None:
            index += 1
            continue
        fence = opened.group(1)
        body: list[str] = []
        index += 1
        while index < len(lines) and not _closes(lines[index], fence):
            body.append(lines[index])
            index += 1
        index += 1
        if body:
            found.append("\n".join(body))
    return "\n".join(found) if found else None


def _closes(line: str, fence: str) -> bool:
    # A diff's own lines start with ' ', '+', '-', '@' or a header word: a bare fence cannot be one.
    text = line.rstrip()
    return len(text) >= len(fence) and set(text) == {fence[0]}


def _bare_diff(lines: list[str]) -> str | None:
    for index, line in enumerate(lines):
        if line.startswith("diff --git ") or (line.startswith("--- ") and index + 1 < len(lines)
                                              and lines[index + 1].startswith("+++ ")):
            return "\n".join(lines[index:])
    return None


def _search_replace_blocks(lines: list[str]) -> tuple[SearchReplace, ...]:
    blocks: list[SearchReplace] = []
    index = 0
    while index < len(lines):
        if not _SR_SEARCH.match(lines[index]):
            index += 1
            continue
        path = _path_before(lines, index)
        if path is None:
            raise PatchRejected(f"a SEARCH/REPLACE block at reply line {index + 1} names no file on the line before it")
        search: list[str] = []
        replace: list[str] = []
        index += 1
        while index < len(lines) and not _SR_DIVIDER.match(lines[index]):
            search.append(lines[index])
            index += 1
        if index >= len(lines):
            raise PatchRejected(f"the SEARCH/REPLACE block for {path} has no ======= divider")
        index += 1
        while index < len(lines) and not _SR_REPLACE.match(lines[index]):
            replace.append(lines[index])
            index += 1
        if index >= len(lines):
            raise PatchRejected(f"the SEARCH/REPLACE block for {path} has no >>>>>>> REPLACE end")
        index += 1
        blocks.append(SearchReplace(path, "\n".join(search), "\n".join(replace)))
    return tuple(blocks)


def _path_before(lines: list[str], index: int) -> str | None:
    for back in range(index - 1, max(-1, index - 4), -1):
        candidate = lines[back].strip()
        if not candidate or candidate.startswith(("```", "~~~")):
            continue
        return candidate.strip("`*").removeprefix("File:").strip()
    return None


def diff_paths(diff: str) -> list[str]:
    """Every path a unified diff names (headers, renames, copies); refuses modes and binaries."""
    paths: list[str] = []
    for line in diff.split("\n"):
        if line.startswith(("--- ", "+++ ")):
            raw = line[4:].split("\t", 1)[0].rstrip()
            if raw == "/dev/null":
                continue
            paths.append(_strip_prefix(_unquote(raw)))
        elif line.startswith("diff --git "):
            continue  # the ---/+++ (or rename) lines carry the same paths unambiguously
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            paths.append(_unquote(line.split(" ", 2)[2].rstrip()))
        elif line.startswith(("new file mode ", "deleted file mode ", "old mode ", "new mode ")):
            mode = line.rsplit(" ", 1)[-1].strip()
            if mode in ("120000", "160000"):
                raise PatchRejected(f"the patch sets mode {mode} (a {'symlink' if mode == '120000' else 'submodule'}); "
                                    "patches may not create or change symlinks or submodules")
            if line.startswith(("old mode ", "new mode ")):
                raise PatchRejected("the patch changes a file mode; mode changes are not accepted from a model")
        elif line.startswith(("GIT binary patch", "Binary files ")):
            raise PatchRejected("the patch is binary; only text patches are accepted")
    if not paths:
        raise PatchRejected("the diff names no file (no --- / +++ headers)")
    return list(dict.fromkeys(paths))


def _unquote(raw: str) -> str:
    if raw.startswith('"'):
        inner = raw[1:-1] if raw.endswith('"') else raw[1:]
        if "\\" in inner:
            raise PatchRejected(f"quoted path with escapes is not accepted: {raw[:80]}")
        return inner
    return raw


def _strip_prefix(raw: str) -> str:
    for prefix in ("a/", "b/"):
        if raw.startswith(prefix):
            return raw[len(prefix):]
    return raw


def check_path(path: str) -> None:
    """Refuse a path that is absolute, leaves the tree, or reaches into .git."""
    if not path or path.strip() != path:
        raise PatchRejected(f"path {path!r} is empty or has surrounding spaces")
    if _CONTROL.search(path) or "\\" in path:
        raise PatchRejected(f"path {path!r} holds control characters or backslashes")
    posix = PurePosixPath(path)
    if posix.is_absolute() or re.match(r"^[A-Za-z]:", path):
        raise PatchRejected(f"path {path} is absolute; patches may only name paths inside the repository")
    if ".." in posix.parts:
        raise PatchRejected(f"path {path} climbs out of the repository (..)")
    for part in posix.parts:
        if is_git_dir_name(part):
            raise PatchRejected(f"path {path!r} is inside .git (or a name that imitates it); patches may not touch git's own files")


def check_no_symlink(root: Path, path: str) -> None:
    """Refuse a path whose components (the file itself included) are symlinks in `root`."""
    current = root
    for part in PurePosixPath(path).parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return  # nothing further exists, so nothing further can be a link
        if stat.S_ISLNK(mode):
            raise PatchRejected(f"path {path} goes through the symlink {current.relative_to(root)}; "
                                "patches may not write through symlinks")


def validate_paths(patch: Patch, root: Path) -> None:
    paths: Iterable[str] = patch.paths or (b.path for b in patch.blocks)
    for path in paths:
        check_path(path)
        check_no_symlink(root, path)


def apply_patch_in_worktree(worktree: Worktree, patch: Patch | str, limits: PatchLimits | None = None) -> str:
    """Apply a patch (or a reply holding one) in the worktree; return the resulting diff against
    the worktree's base. Nothing outside the worktree is written; on PatchRejected nothing is.
    A patch over `limits` is rejected before anything is written, and its result is measured again."""
    if isinstance(patch, str):
        patch = extract_patch(patch)
    limits = limits or PatchLimits()
    size = len(patch.diff.encode("utf-8", "surrogateescape")) if patch.kind == "diff" else \
        sum(len(b.replace.encode("utf-8", "surrogateescape")) for b in patch.blocks)
    check_patch_size(len(patch.paths), size, limits)
    root = worktree.path
    validate_paths(patch, root)
    # Only our own code has run in the worktree since its snapshot: the snapshot's settings still hold.
    cfg = filter_overrides(root) if worktree.config is None else worktree.config
    if patch.kind == "diff":
        data = patch.diff.encode("utf-8", "surrogateescape")
        # All or nothing: git apply writes no file unless every hunk applies (no --reject). With
        # --index it stages what it writes, so the diff below need not stage the paths again.
        applied = run_git(root, ["apply", "--index", "--recount", "--whitespace=nowarn", "-"], input_bytes=data, check=False,
                          config=cfg)
        if applied.returncode != 0:
            raise PatchRejected("the diff does not apply: " + _first_error(applied.stderr))
    else:
        _apply_search_replace(root, patch.blocks)
    result = worktree_diff(root, patch.paths or tuple(dict.fromkeys(b.path for b in patch.blocks)), config=cfg,
                           staged=patch.kind == "diff")
    if not result.strip():
        raise PatchRejected("the patch changes nothing")
    check_patch_size(sum(1 for line in result.split("\n") if line.startswith("diff --git ")),
                     len(result.encode("utf-8", "surrogateescape")), limits)
    return result


def worktree_diff(root: Path, paths: Sequence[str] | None = None, *, config: Sequence[str] | None = None,
                  staged: bool = False) -> str:
    """The worktree's changes against its HEAD, new files included (its own index only).

    With `paths` (a one-shot patch names them) only those are staged and compared, by name: nothing
    walks the rest of the tree. Without, every file is (an agent may have changed anything).
    `config`: the `-c` settings that switch the repository's filter drivers off, when they were read
    after repository code last ran in the worktree; by default they are read now (see git.py).
    `staged`: the index already holds `paths` as they are on disk (`git apply --index` wrote them).
    """
    cfg = filter_overrides(root) if config is None else config
    literal = {"GIT_LITERAL_PATHSPECS": "1"}
    if paths is None:
        run_git(root, ["add", "-A", "--", "."], config=cfg)
        names: list[str] = []
    else:
        names = list(dict.fromkeys(paths))
        if not staged:
            listing = "".join(f"{p}\0" for p in names).encode("utf-8", "surrogateescape")
            run_git(root, ["update-index", "--add", "--remove", "-z", "--stdin"], input_bytes=listing, config=cfg)
    proc = run_git(root, ["diff", "--cached", *DIFF_FORMAT, "--no-renames", "--full-index", "HEAD", "--", *names],
                   config=cfg, env=literal)
    return proc.stdout.decode("utf-8", "surrogateescape")


def _apply_search_replace(root: Path, blocks: tuple[SearchReplace, ...]) -> None:
    contents: dict[str, str | None] = {}
    for block in blocks:
        if block.path not in contents:
            target = root / block.path
            if target.is_symlink():
                raise PatchRejected(f"{block.path} is a symlink; patches may not write through symlinks")
            if target.is_file():
                contents[block.path] = target.read_bytes().decode("utf-8", "surrogateescape")
            elif target.exists():
                raise PatchRejected(f"{block.path} is not a regular file")
            else:
                contents[block.path] = None
        current = contents[block.path]
        if current is None:
            if block.search.strip():
                raise PatchRejected(f"{block.path} does not exist, so its SEARCH text cannot match")
            contents[block.path] = block.replace + ("\n" if block.replace and not block.replace.endswith("\n") else "")
            continue
        if not block.search.strip():
            raise PatchRejected(f"an empty SEARCH for the existing file {block.path} is ambiguous")
        count = current.count(block.search)
        if count != 1:
            where = "not found" if count == 0 else f"found {count} times"
            raise PatchRejected(f"SEARCH text for {block.path} {where}; it must match exactly once")
        contents[block.path] = current.replace(block.search, block.replace, 1)
    # Every block matched: only now write, each file atomically and never through a link (safefs).
    for path, text in contents.items():
        assert text is not None
        try:
            write_file(root, path, text.encode("utf-8", "surrogateescape"))
        except LinkRefused as exc:
            raise PatchRejected(str(exc)) from None


def _first_error(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    picked = [line for line in lines if line.startswith("error:")] or lines
    return "; ".join(line.removeprefix("error: ") for line in picked[:3]) or "git apply failed"


__all__ = [
    "Patch", "PatchLimits", "PatchRejected", "PatchRejectedError", "SearchReplace", "WorkspaceError", "apply_patch_in_worktree",
    "check_no_symlink", "check_patch_size", "check_path", "diff_paths", "extract_patch", "validate_paths", "worktree_diff",
]
