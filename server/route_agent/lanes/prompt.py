"""Prompt assembly: the brief, the change set and the relevant files, with no secrets in it.

    build_prompt(brief, change_set, repo_root, spec, findings=None, *, read_file=None,
                 is_ignored=None, extra_paths=()) -> Prompt
    Prompt(messages, estimated_tokens, withheld: list[Withheld], redactions: list[Redaction])
    Withheld(path, line | None, reason); Redaction(path, line, rule)
    never_send_reason(path) -> str | None
    redact_text(text, origin) -> (text, [Redaction])      # the secret scan alone, for later messages

What goes in, in this order, until the lane's context is full: the system prompt (asking for one
fenced ```diff block, SEARCH/REPLACE blocks also accepted), the brief (cleaned of hidden characters,
at most 16 KB), earlier findings (for an escalation), the change set's added and removed lines, then
the current text of the changed files and of files the brief names. The budget is
`(max_context_tokens - max_output_tokens) * 4` characters (estimate.py: 4 characters a token).

What never goes in (safety.md, "Secrets never leave the machine"): the never-send list (.env*
except .example/.sample/.template, key and keystore files, .ssh/ .aws/ .gnupg/ and credential
files, Terraform state and variables, .git/), gitignored files, binaries, files over 256 KB,
symlinks (their target is not read) and lines over 4 KB. Then the secret rules (outbound.py, the
gate every request passes again in the client) scan exactly the text of every message to be sent;
each hit is replaced by `[REDACTED:<rule>]` (a private key block as a whole) and recorded with its
path and line, and the scan repeats until clean. Everything left out is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from route_agent.lanes.estimate import CHARS_PER_TOKEN, estimate_tokens
from route_agent.lanes.outbound import MAX_LINE_BYTES, never_send_reason, redact_lines
from route_agent.policy.models import ModelSpec
from route_agent.signals.changeset import ChangedFile, ChangeSet
from route_agent.signals.taint import clean_tainted
from route_agent.workspace.git import WorkspaceError, run_git

__all__ = ["Prompt", "Redaction", "Withheld", "build_prompt", "never_send_reason", "redact_text"]

MAX_FILE_BYTES = 256 * 1024
MAX_FINDINGS_CHARS = 8 * 1024
BRIEF_PATH = "<brief>"
FINDINGS_PATH = "<findings>"

SYSTEM_PROMPT = """You are a careful software engineer making the smallest correct change to a repository.
Answer with the change as a unified diff in ONE fenced block that starts with ```diff, with paths
relative to the repository root and a/ b/ prefixes (--- a/path, +++ b/path; /dev/null for new or
deleted files) and at least three lines of context per hunk, copied exactly from the files shown.
If a unified diff is impractical, you may instead give SEARCH/REPLACE blocks: the file path on its own
line, then <<<<<<< SEARCH, the exact current lines, =======, the new lines, >>>>>>> REPLACE.
Change only what the task needs. Never touch .git/, never create symlinks, never write outside the
repository. Some content was withheld or redacted as [REDACTED:...] for safety; leave those alone.
Keep any explanation to a few sentences before the block."""

_SPLIT_CHARS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_PATH_TOKEN = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.[A-Za-z0-9]{1,8})(?![\w/])")


@dataclass(frozen=True, slots=True)
class Withheld:
    path: str
    line: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Redaction:
    path: str
    line: int
    rule: str


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    estimated_tokens: int
    withheld: list[Withheld] = field(default_factory=list)
    redactions: list[Redaction] = field(default_factory=list)

    @property
    def left_out(self) -> list[dict[str, Any]]:
        """Withheld content and redactions as plain dicts, for the attempt record."""
        return [{"kind": "withheld", **asdict(w)} for w in self.withheld] + [
            {"kind": "redacted", **asdict(r)} for r in self.redactions]


class _Builder:
    """Lines of one message with the origin (path, line) of each, for naming redactions."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.origins: list[tuple[str, int | None]] = []
        self.chars = 0

    def add(self, text: str, origin: tuple[str, int | None] = ("", None)) -> None:
        self.lines.append(text)
        self.origins.append(origin)
        self.chars += len(text) + 1

    def extend(self, other: _Builder) -> None:
        self.lines.extend(other.lines)
        self.origins.extend(other.origins)
        self.chars += other.chars


def build_prompt(brief: str, change_set: ChangeSet, repo_root: Path, spec: ModelSpec,
                 findings: Sequence[object] | None = None, *,
                 read_file: Callable[[str], bytes | None] | None = None,
                 is_ignored: Callable[[Sequence[str]], set[str]] | None = None,
                 extra_paths: Iterable[str] = ()) -> Prompt:
    """Assemble the chat messages for `spec`; see the module docstring for what is left out.

    `read_file(path)` returns a file's current bytes (default: read under `repo_root`, never through
    a symlink); `is_ignored(paths)` returns the gitignored subset (default: `git check-ignore`).
    """
    withheld: list[Withheld] = []
    budget_chars = max(2048, (spec.max_context_tokens - spec.max_output_tokens) * CHARS_PER_TOKEN) - len(SYSTEM_PROMPT)
    reader = read_file or (lambda rel: _read_in_root(repo_root, rel))
    ignored_of = is_ignored or (lambda paths: _git_ignored(repo_root, paths))

    clean = clean_tainted(brief)
    body = _task_section(clean.text, findings, withheld)
    if clean.truncated:
        withheld.append(Withheld(BRIEF_PATH, None, f"brief cut to 16 KB from {clean.original_length} characters"))

    candidates = [f.path for f in change_set.files]
    known = set(candidates)
    mentioned = [p for p in (*extra_paths, *_paths_named(clean.text)) if p not in known]
    ignored = ignored_of([p for p in (*candidates, *mentioned) if never_send_reason(p) is None])
    sendable = _sendable(change_set.files, ignored, withheld)
    # The change set's lines: what the user changed, before the files' full text.
    _add_diff_section(body, sendable, budget_chars, withheld)
    # The files' current text, changed files first, then the ones the brief names.
    to_read = [f.path for f in sendable if f.status != "deleted"]
    for path in mentioned:
        reason = _file_reason(path, ignored)
        if reason is None:
            to_read.append(path)
        elif not reason.startswith("outside"):
            withheld.append(Withheld(path, None, reason))
    _add_file_sections(body, to_read, reader, budget_chars, withheld)

    system = _Builder()
    for line in _split(SYSTEM_PROMPT):
        system.add(line)
    redactions: list[Redaction] = []
    system_text = _redact(system, redactions)
    user_text = _redact(body, redactions)
    messages = [{"role": "system", "content": system_text}, {"role": "user", "content": user_text}]
    tokens = estimate_tokens(len(system_text) + len(user_text)) + 8
    return Prompt(messages=messages, estimated_tokens=tokens, withheld=withheld, redactions=redactions)


def _task_section(brief: str, findings: Sequence[object] | None, withheld: list[Withheld]) -> _Builder:
    """The brief (already cleaned), then an escalation's findings from the previous attempt (8 KB cap)."""
    body = _Builder()
    body.add("## Task")
    for number, line in enumerate(_split(brief), start=1):
        body.add(*_line_or_withheld(line, BRIEF_PATH, number, withheld))
    if findings:
        body.add("")
        body.add("## Problems found in the previous attempt")
        used = 0
        for item in findings:
            text = " ".join(str(item).split())
            if used + len(text) > MAX_FINDINGS_CHARS:
                withheld.append(Withheld(FINDINGS_PATH, None, "further findings left out (8 KB cap)"))
                break
            used += len(text)
            body.add(*_line_or_withheld("- " + text, FINDINGS_PATH, None, withheld))
    return body


def _sendable(files: Sequence[ChangedFile], ignored: set[str], withheld: list[Withheld]) -> list[ChangedFile]:
    """The changed files that may be sent (never-send list, gitignored, binary: left out, recorded)."""
    sendable: list[ChangedFile] = []
    for changed in files:
        reason = _file_reason(changed.path, ignored)
        if reason is None and changed.binary:
            reason = "binary"
        if reason is not None:
            withheld.append(Withheld(changed.path, None, reason))
            continue
        sendable.append(changed)
    return sendable


def _add_diff_section(body: _Builder, sendable: Sequence[ChangedFile], budget_chars: int, withheld: list[Withheld]) -> None:
    if not sendable:
        return
    diff = _Builder()
    diff.add("")
    diff.add("## Uncommitted changes (line numbers: - old file, + new file)")
    for changed in sendable:
        section = _Builder()
        section.add(f"### {changed.path} ({changed.status})")
        for number, text in changed.removed:
            section.add(*_line_or_withheld(f"-{number}: {text}", changed.path, number, withheld, old=True))
        for number, text in changed.added:
            section.add(*_line_or_withheld(f"+{number}: {text}", changed.path, number, withheld))
        if body.chars + diff.chars + section.chars > budget_chars:
            withheld.append(Withheld(changed.path, None, "diff over the context budget"))
            continue
        diff.extend(section)
    body.extend(diff)


def _add_file_sections(body: _Builder, to_read: Sequence[str], reader: Callable[[str], bytes | None], budget_chars: int,
                       withheld: list[Withheld]) -> None:
    header_done = False
    for path in to_read:
        data = _readable(path, reader, withheld)
        if data is None:
            continue
        section = _Builder()
        if not header_done:
            section.add("")
            section.add("## Current file contents")
        section.add(f"### {path}")
        section.add("```")
        for number, line in enumerate(_split(data.decode("utf-8", "replace")), start=1):
            section.add(*_line_or_withheld(line, path, number, withheld))
        section.add("```")
        if body.chars + section.chars > budget_chars:
            withheld.append(Withheld(path, None, "file over the context budget"))
            continue
        header_done = True
        body.extend(section)


def _readable(path: str, reader: Callable[[str], bytes | None], withheld: list[Withheld]) -> bytes | None:
    """A file's bytes when they may go into the prompt; else None (and why, when there is a reason)."""
    try:
        data = reader(path)
    except OSError as exc:
        withheld.append(Withheld(path, None, f"unreadable: {exc.strerror or exc}"))
        return None
    except _Refused as exc:
        withheld.append(Withheld(path, None, str(exc)))
        return None
    if data is None:
        return None  # a named path that does not exist: nothing to say
    if len(data) > MAX_FILE_BYTES:
        withheld.append(Withheld(path, None, f"larger than {MAX_FILE_BYTES // 1024} KB"))
        return None
    if b"\0" in data[:8192]:
        withheld.append(Withheld(path, None, "binary"))
        return None
    return data


def redact_text(text: str, origin: str) -> tuple[str, list[Redaction]]:
    """`text` with every secret-rule hit redacted as in a prompt (`[REDACTED:<rule>]`, a private key
    block as a whole), and what was redacted, naming `origin` and the line; for text sent later in a
    conversation, such as a command's output."""
    builder = _Builder()
    for number, line in enumerate(_split(text), start=1):
        builder.add(line, (origin, number))
    redactions: list[Redaction] = []
    return _redact(builder, redactions), redactions


class _Refused(Exception):
    """A file that must not be read (a symlink, or a path leaving the repository)."""


def _read_in_root(root: Path, rel: str) -> bytes | None:
    if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
        raise _Refused("outside the repository")
    current = root
    for part in PurePosixPath(rel).parts:
        current = current / part
        try:
            if current.is_symlink():
                raise _Refused("symlink (its target is not read)")
        except OSError:
            return None
    if not current.is_file():
        return None
    with current.open("rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


def _git_ignored(root: Path, paths: Sequence[str]) -> set[str]:
    if not paths:
        return set()
    payload = "".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape")
    try:
        proc = run_git(root, ["check-ignore", "-z", "--stdin"], input_bytes=payload, check=False)
    except WorkspaceError:
        return set()
    if proc.returncode not in (0, 1):
        return set()  # not a repository: nothing can be gitignored
    return {p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p}


def _file_reason(path: str, ignored: set[str]) -> str | None:
    reason = never_send_reason(path)
    if reason is not None:
        return reason
    posix = PurePosixPath(path)
    if posix.is_absolute() or ".." in posix.parts:
        return "outside the repository"
    if path in ignored:
        return "ignored by git"
    return None


def _paths_named(text: str) -> list[str]:
    seen: list[str] = []
    for match in _PATH_TOKEN.finditer(text):
        candidate = match.group(1).strip(".")
        if candidate and candidate not in seen and len(seen) < 20:
            seen.append(candidate)
    return seen


def _split(text: str) -> list[str]:
    # Lines as find_secrets will see them: no other line separators inside a line.
    return [_SPLIT_CHARS.sub(" ", line) for line in text.replace("\r\n", "\n").split("\n")]


def _line_or_withheld(line: str, path: str, number: int | None, withheld: list[Withheld],
                      old: bool = False) -> tuple[str, tuple[str, int | None]]:
    line = _SPLIT_CHARS.sub(" ", line)
    if len(line.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
        label = f"{path} (old)" if old else path
        withheld.append(Withheld(label, number, "line over 4 KB"))
        return f"[line {number} withheld: over 4 KB]" if number else "[line withheld: over 4 KB]", (path, number)
    return line, (path, None if old else number)


def _redact(builder: _Builder, redactions: list[Redaction]) -> str:
    """Scan exactly the text to be sent with the gate's rules (outbound.py), naming each hit's origin."""
    origins = builder.origins
    for index, rule in redact_lines(builder.lines, lambda start, index: origins[index][0] == origins[start][0]):
        path, number = origins[index]
        entry = Redaction(path or "<prompt>", number or 0, rule)
        if entry not in redactions:
            redactions.append(entry)
    return "\n".join(builder.lines)
