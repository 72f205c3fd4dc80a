"""Unified diffs (git's, a model's, a dataset's reference patch) as change-set data.

unidiff does the parsing; this adds what it leaves out (file modes) and maps statuses.
"""

from __future__ import annotations

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchedFile, PatchSet

from route_agent.signals.changeset import ChangedFile, ChangeSet, FileStatus

MAX_LINE_CHARS = 4096
Lines = tuple[tuple[int, str], ...]


class DiffParseError(ValueError):
    """Text that is not a unified diff."""


def _parse(diff_text: str) -> PatchSet:
    try:
        return PatchSet(diff_text)
    except UnidiffParseError as exc:
        raise DiffParseError(f"cannot parse diff: {exc}") from None


def _lines(pfile: PatchedFile) -> tuple[Lines, Lines]:
    added: list[tuple[int, str]] = []
    removed: list[tuple[int, str]] = []
    for hunk in pfile:
        for line in hunk:
            if line.is_added and line.target_line_no is not None:
                added.append((line.target_line_no, line.value.rstrip("\n")[:MAX_LINE_CHARS]))
            elif line.is_removed and line.source_line_no is not None:
                removed.append((line.source_line_no, line.value.rstrip("\n")[:MAX_LINE_CHARS]))
    return tuple(added), tuple(removed)


def parse_diff_lines(diff_text: str) -> dict[str, tuple[Lines, Lines, bool]]:
    """Added and removed lines per path, and whether the file is binary."""
    out: dict[str, tuple[Lines, Lines, bool]] = {}
    for pfile in _parse(diff_text):
        added, removed = _lines(pfile)
        out[pfile.path] = (added, removed, bool(pfile.is_binary_file))
    return out


def _strip(name: str | None) -> str | None:
    if name is None or name == "/dev/null":
        return None
    return name[2:] if name.startswith(("a/", "b/")) else name


def change_set_from_diff(diff_text: str, base: str | None = None) -> ChangeSet:
    """A change set from a unified diff, with statuses, renames and modes from git's headers."""
    files: list[ChangedFile] = []
    for pfile in _parse(diff_text):
        old_mode = new_mode = None
        for info in pfile.patch_info or ():
            text = str(info).strip()
            if text.startswith("old mode "):
                old_mode = text[9:].strip()
            elif text.startswith("new mode "):
                new_mode = text[9:].strip()
            elif text.startswith("new file mode "):
                new_mode = text[14:].strip()
            elif text.startswith("deleted file mode "):
                old_mode = text[18:].strip()
            elif text.startswith("index ") and len(text.split()) == 3:
                old_mode = new_mode = text.split()[2]
        status: FileStatus = "modified"
        old_path = None
        # From git's headers, not unidiff's guess: with -U0, a line added at the top of a file is a
        # hunk "@@ -0,0 +1 @@", which unidiff reads as a new file.
        headers = [str(info).strip() for info in pfile.patch_info or ()]
        if pfile.source_file == "/dev/null" or any(h.startswith("new file mode ") for h in headers):
            status = "added"
        elif pfile.target_file == "/dev/null" or any(h.startswith("deleted file mode ") for h in headers):
            status = "deleted"
        elif pfile.is_rename:
            status = "renamed"
            old_path = _strip(pfile.source_file)
        added, removed = _lines(pfile)
        files.append(ChangedFile(path=pfile.path, status=status, added=added, removed=removed, old_path=old_path,
                                 old_mode=old_mode, new_mode=new_mode, binary=bool(pfile.is_binary_file)))
    return ChangeSet(files=tuple(files), base=base)
