"""The change set: plain data describing what changed, as git and the editor report it.

Produced by `route_agent.workspace` (git) or by the evaluator (a reference patch); consumed by the
signal computation. Nothing here runs git or reads files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FileStatus = Literal["added", "modified", "deleted", "renamed", "untracked", "typechange", "copied"]

MODE_SYMLINK = "120000"
MODE_EXEC = "100755"
MODE_GITLINK = "160000"


@dataclass(frozen=True, slots=True)
class ChangedFile:
    path: str
    """Repository-relative POSIX path of the file after the change (before, for a deletion)."""
    status: FileStatus
    added: tuple[tuple[int, str], ...] = ()
    """(line number in the new file, text) for every added line; for a new file, every line."""
    removed: tuple[tuple[int, str], ...] = ()
    """(line number in the old file, text) for every removed line."""
    old_path: str | None = None
    old_mode: str | None = None
    new_mode: str | None = None
    binary: bool = False
    unsaved: bool = False
    """The contents came from an editor buffer that is not saved yet."""
    truncated: bool = False
    """Part of the file's lines were not examined (size caps)."""

    @property
    def is_symlink(self) -> bool:
        return MODE_SYMLINK in (self.old_mode, self.new_mode)

    @property
    def is_submodule(self) -> bool:
        return MODE_GITLINK in (self.old_mode, self.new_mode)

    @property
    def exec_bit_changed(self) -> bool:
        old, new = self.old_mode, self.new_mode
        if self.status in ("added", "untracked"):
            return new == MODE_EXEC
        return old is not None and new is not None and (old == MODE_EXEC) != (new == MODE_EXEC)


@dataclass(frozen=True, slots=True)
class ChangeSet:
    files: tuple[ChangedFile, ...] = ()
    base: str | None = None
    """The commit the change is relative to (None: no commit yet, or not from git)."""
    notes: tuple[str, ...] = field(default=())
    """Facts a front end wants shown (e.g. untracked directories cut short)."""

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    def get(self, path: str) -> ChangedFile | None:
        for f in self.files:
            if f.path == path:
                return f
        return None
