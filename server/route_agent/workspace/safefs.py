"""Writing inside a tree (the user's repository or a worktree) without ever following a link.

    write_file(root, rel, data, mode=None) -> None   # atomic replace of root/rel; raises LinkRefused
    make_symlink(root, rel, link_target) -> None     # a new link (copying the user's link to a worktree)
    remove_file(root, rel) -> None          # unlink root/rel (never what a link points at)
    LinkRefused(WorkspaceError)

A repository is written by someone else: any name in it, the temporary file's included, may be a
committed symlink to a file outside it (a shell start-up file). So every directory from `root` down
is opened with O_NOFOLLOW relative to its parent's descriptor (a link anywhere refuses the write, and
a directory swapped for a link after a check cannot redirect it), the temporary file gets a fresh
random name and is created with O_CREAT|O_EXCL|O_NOFOLLOW (an existing name, link or not, is never
reused), its mode is set with fchmod on that descriptor, and it is renamed over the target inside the
same opened directory (a rename replaces a link, it never writes through one). `root` itself is the
place the user chose and is opened as it is.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from route_agent.workspace.git import WorkspaceError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TMP_SUFFIX = ".route-agent-tmp"


class LinkRefused(WorkspaceError):
    """A write would have gone through a symlink (or something that is not a regular file)."""


def _parts(rel: str) -> tuple[str, ...]:
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise LinkRefused(f"path {rel!r} is not a plain path inside the tree")
    return parts


def _open_parent(root: Path, rel: str, *, create: bool) -> tuple[int, str]:
    """A descriptor of rel's directory, reached from root without following any link, and the leaf."""
    parts = _parts(rel)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        walked = ""
        for part in parts[:-1]:
            walked = f"{walked}/{part}" if walked else part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)  # mkdir never follows a link in its last component
                except FileExistsError:
                    pass  # made meanwhile: opened (and checked) below
                child = _open_dir(part, fd, rel, walked)
            except OSError as exc:
                raise _refusal(exc, rel, walked) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _open_dir(name: str, dir_fd: int, rel: str, walked: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise _refusal(exc, rel, walked) from None


def _refusal(exc: OSError, rel: str, walked: str) -> Exception:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return LinkRefused(f"path {rel} goes through {walked}, which is a symlink or not a directory; "
                           "route-agent never writes through a link")
    return exc


def write_file(root: Path, rel: str, data: bytes | BinaryIO, mode: int | None = None) -> None:
    """Replace root/rel with `data` (bytes, or a binary file streamed in) atomically; the file gets
    `mode` when given, else an existing file keeps its permission bits and a new one the umask's.

    Refuses (LinkRefused, nothing written) when rel or any directory on the way is a symlink, or
    rel exists and is not a regular file.
    """
    dir_fd, name = _open_parent(root, rel, create=True)
    try:
        try:
            current = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is not None and not stat.S_ISREG(current.st_mode):
            kind = "a symlink" if stat.S_ISLNK(current.st_mode) else "not a regular file"
            raise LinkRefused(f"{rel} is {kind}; route-agent never writes through a link")
        new_mode = mode if mode is not None else (stat.S_IMODE(current.st_mode) if current is not None else None)
        tmp, fd = _create_temp(dir_fd, name)
        try:
            with os.fdopen(fd, "wb") as handle:
                if isinstance(data, bytes):
                    handle.write(data)
                else:
                    shutil.copyfileobj(data, handle)
                if new_mode is not None:
                    os.fchmod(handle.fileno(), stat.S_IMODE(new_mode))
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(dir_fd)


def _create_temp(dir_fd: int, name: str) -> tuple[str, int]:
    """A new file beside `name`, created exclusively (never an existing name, never through a link)."""
    stem = name[:120]
    for _ in range(100):
        tmp = f".{stem}.{secrets.token_hex(8)}{TMP_SUFFIX}"
        try:
            return tmp, os.open(tmp, _NEW_FILE_FLAGS, 0o666, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise WorkspaceError(f"could not create a temporary file beside {name}")


def make_symlink(root: Path, rel: str, link_target: str) -> None:
    """Create root/rel as a symlink to `link_target` (copying a user's link into a worktree); the
    directories on the way are checked like write_file's, and an existing name is never replaced."""
    dir_fd, name = _open_parent(root, rel, create=True)
    try:
        os.symlink(link_target, name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def remove_file(root: Path, rel: str) -> None:
    """Remove root/rel (a link is removed itself, never what it points at); refuses links on the way."""
    try:
        dir_fd, name = _open_parent(root, rel, create=False)
    except FileNotFoundError:
        return
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dir_fd)


__all__ = ["TMP_SUFFIX", "LinkRefused", "make_symlink", "remove_file", "write_file"]
