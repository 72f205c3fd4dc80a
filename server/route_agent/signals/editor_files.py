"""Files editors create beside the ones being edited: lock, swap, autosave and backup files.

They are never part of a change set, whether or not the repository ignores them: an unsaved edit in
Emacs creates `.#name.py` (a dangling symlink), and counting it raised the risk by a changed file and
a symlink added. Each pattern names one editor's artefact; none matches a file a project keeps.
"""

from __future__ import annotations

from functools import lru_cache

import pathspec

EDITOR_ARTEFACTS = (
    ".#*",             # Emacs lock file (a symlink to user@host.pid)
    "\\#*#",           # Emacs auto-save (`#` would start a comment)
    "*~",              # Emacs, Vim, gedit, Kate backups; Vim undo `.name.un~`
    ".*.sw[a-p]",      # Vim swap: .name.swp, .swo, .swn, ...
    "4913",            # Vim's probe that the directory is writable
    ".~lock.*#",       # LibreOffice lock
    "~$*",             # Microsoft Office owner file
    "*.kate-swp",      # Kate swap
    ".goutputstream-*",  # gedit/GIO atomic-save temporary
    "*___jb_tmp___",   # JetBrains safe-write temporary
    "*___jb_old___",   # JetBrains safe-write backup
)
"""gitignore-style patterns (no `/`: they match a file's name in any folder)."""


@lru_cache(maxsize=1)
def _spec() -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(EDITOR_ARTEFACTS)


def is_editor_artefact(path: str) -> bool:
    """True for an editor's lock, swap, auto-save or backup file (`path` repository-relative, POSIX)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return bool(name) and _spec().match_file(name)
