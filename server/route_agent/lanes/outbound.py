"""The one gate every byte sent to a model goes through: the never-send and secret rules.

    guard_request(body) -> Guarded(body, notes)       # what LaneClient sends, and only that
    never_send_reason(path) -> str | None
    redact_lines(lines) -> list[(index, rule)]        # in place, until a scan comes back clean
    GuardNote(message, line, rule)

`LaneClient` builds every request body through `guard_request` right before it is encoded
(client.py, `_request_body`; `_stream_once` is the only place that sends), so a request type added
later (the verifier's, an agent's turn, anything new) cannot skip these rules. Prompt assembly
(prompt.py) applies the same rules earlier, to name the file and line of each redaction and to
leave whole files out; the gate then finds nothing more in a lane prompt.

Rules, for every string in the request body (message contents, multi-part texts, tool arguments):
1. Never-send sections: a unified diff section (from `diff --git`, or a `---`/`+++` header pair, to
   the next header or the end of the diff) of a never-send path (.env files, keys, keystores,
   credential files, .ssh/ .aws/ .gnupg/ .git/ ...) is replaced by one line naming the path.
2. Lines over 4 KB are withheld: the secret rules look at the first 4 KB of a line only.
3. The secret rules (signals.detectors) scan exactly the text left; each hit becomes
   `[REDACTED:<rule>]` (a private key block as a whole), and the scan repeats until clean.
"""

from __future__ import annotations

import bisect
import fnmatch
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from route_agent.signals.detectors import SECRET_RULES, scan_lines

MAX_LINE_BYTES = 4096
MAX_PASSES = 50

# safety.md's never-send list, as (glob on the file name | directory part | path suffix) rules.
_NAME_GLOBS = ("*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx", "*.ppk", "id_rsa*", "id_ecdsa*",
               "id_ed25519*", "id_dsa*", ".npmrc", ".pypirc", ".netrc", ".git-credentials", ".htpasswd", "*.tfstate*",
               "*.tfvars", "credentials*.json", "service-account*.json")
_DIR_PARTS = (".ssh", ".aws", ".gnupg", ".git")
_PATH_SUFFIXES = (".kube/config", ".docker/config.json")
_ENV_SAFE_SUFFIXES = (".example", ".sample", ".template")

# Substrings of every never-send name (lower case): lines without one cannot name such a file.
_NEVER_SEND_HINTS = (".env", ".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".kdbx", ".ppk", "id_", "rc", ".git",
                     ".htpasswd", ".tf", "credentials", "service-account", ".ssh", ".aws", ".gnupg", ".kube", ".docker")
_COLON_DIGIT = re.compile(r":\d")  # `path:line`: find the colons (rare), then read the path back to a delimiter
_PATH_STOP = frozenset(" \t\n\r\x0b\x0c'\"`:()[]")
_DIFF_GIT = re.compile(r'^diff --git (?:"?a/(?P<a>.+?)"?) (?:"?b/(?P<b>.+?)"?)\s*$')
_OLD_HEADER = re.compile(r"^--- (?:a/)?(?P<path>[^\t]+)")
_NEW_HEADER = re.compile(r"^\+\+\+ (?:b/)?(?P<path>[^\t]+)")
_DIFF_BODY = ("diff --git ", "index ", "new file mode", "deleted file mode", "old mode", "new mode", "similarity index",
              "dissimilarity index", "rename from", "rename to", "copy from", "copy to", "Binary files", "GIT binary patch",
              "--- ", "+++ ", "@@", " ", "+", "-", "\\")


@dataclass(frozen=True, slots=True)
class GuardNote:
    """One thing the gate changed: in which message (0-based), at which line (1-based), and why."""

    message: int
    line: int
    rule: str

    def __str__(self) -> str:
        return f"message {self.message + 1} line {self.line}: {self.rule}"


@dataclass(frozen=True)
class Guarded:
    body: dict[str, Any]
    notes: list[GuardNote] = field(default_factory=list)


def never_send_reason(path: str) -> str | None:
    """Why safety.md forbids sending this path, or None when it may be sent."""
    posix = PurePosixPath(path.replace("\\", "/"))
    parts = [p.lower() for p in posix.parts]
    if not parts:
        return None
    for part in parts[:-1]:
        if part in _DIR_PARTS:
            return f"never sent: under {part}/"
    name = parts[-1]
    if name == ".git":
        return "never sent: .git"
    lowered = "/".join(parts)
    if name.startswith(".env") and not name.endswith(_ENV_SAFE_SUFFIXES):
        return "never sent: .env file"
    for suffix in _PATH_SUFFIXES:
        if lowered == suffix or lowered.endswith("/" + suffix):
            return f"never sent: {suffix}"
    for glob in _NAME_GLOBS:
        if fnmatch.fnmatchcase(name, glob):
            return f"never sent: matches {glob}"
    return None


def guard_request(body: dict[str, Any]) -> Guarded:
    """The request body with every string through the rules above; `notes` lists what changed."""
    notes: list[GuardNote] = []
    messages = body.get("messages")
    guarded: dict[str, Any] = {}
    def noting(message: int) -> Callable[[int, str], None]:
        return lambda line, rule: notes.append(GuardNote(message, line, rule))

    for key, value in body.items():
        if key == "messages" and isinstance(messages, list):
            guarded[key] = [_guard_value(m, noting(i)) for i, m in enumerate(messages)]
        else:
            guarded[key] = _guard_value(value, noting(-1))
    return Guarded(guarded, notes)


def _guard_value(value: Any, note: Callable[[int, str], None]) -> Any:
    if isinstance(value, str):
        return guard_text(value, note)
    if isinstance(value, dict):
        return {k: _guard_value(v, note) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_guard_value(v, note) for v in value]
    return value


def guard_text(text: str, note: Callable[[int, str], None] | None = None) -> str:
    """One string through the never-send, long-line and secret rules; `note(line, rule)` per change."""
    if not text:
        return text
    lines = text.split("\n")
    changed = _withhold_never_send_sections(lines, note)
    changed = _withhold_quotes_of_never_send_files(lines, note) or changed
    for index, line in enumerate(lines):
        if len(line) * 4 > MAX_LINE_BYTES and len(line.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
            lines[index] = "[line withheld: over 4 KB]"
            changed = True
            if note is not None:
                note(index + 1, "line over 4 KB")
    hits = redact_lines(lines)
    if not hits and not changed:
        return text
    if note is not None:
        for index, rule in hits:
            note(index + 1, rule)
    return "\n".join(lines)


def redact_lines(lines: list[str], same_block: Callable[[int, int], bool] | None = None) -> list[tuple[int, str]]:
    """Replace every secret in `lines` (in place) until a scan comes back clean.

    Returns (line index, rule) per redaction. A private key block is redacted from its BEGIN line to
    its END line (at most 200 lines, and only while `same_block(start, index)` holds).
    """
    done: list[tuple[int, str]] = []
    for _ in range(MAX_PASSES):
        hits = scan_lines(SECRET_RULES, "", list(enumerate(lines)), limit=10_000)
        if not hits:
            return done
        for hit in hits:
            index = hit.line
            line = lines[index]
            start, end = hit.span
            if hit.rule == "private key":
                _redact_key_block(lines, index, same_block)
            elif end > start:
                lines[index] = line[:start] + f"[REDACTED:{hit.rule}]" + line[end:]
            else:
                lines[index] = f"[REDACTED:{hit.rule}]"
            done.append((index, hit.rule))
    # A rule that still matches after every pass (should not happen): withhold what it matches.
    for hit in scan_lines(SECRET_RULES, "", list(enumerate(lines)), limit=10_000):
        lines[hit.line] = "[REDACTED]"
        done.append((hit.line, hit.rule))
    return done


def _redact_key_block(lines: list[str], start: int, same_block: Callable[[int, int], bool] | None) -> None:
    end = start
    for index in range(start, min(len(lines), start + 200)):
        if same_block is not None and not same_block(start, index):
            break
        end = index
        if index > start and "-----END" in lines[index]:
            break
    for index in range(start, end + 1):
        lines[index] = "[REDACTED:private key]"


def _withhold_never_send_sections(lines: list[str], note: Callable[[int, str], None] | None) -> bool:
    """Replace the diff sections of never-send paths by one line each; True when any was."""
    if not any(line.startswith(("diff --git ", "+++ ")) for line in lines):
        return False
    out: list[str] = []
    changed = False
    index = 0
    while index < len(lines):
        reason, path = _section_start(lines, index)
        if reason is None:
            out.append(lines[index])
            index += 1
            continue
        end = index + 1
        git_section = lines[index].startswith("diff --git ")
        while end < len(lines) and _in_body(lines, end) and not _starts_section(lines, end, git_section):
            end += 1
        out.append(f"[withheld: {path}: {reason}]")
        if note is not None:
            note(index + 1, f"{path}: {reason}")
        changed = True
        index = end
    if changed:
        lines[:] = out
    return changed


def _withhold_quotes_of_never_send_files(lines: list[str], note: Callable[[int, str], None] | None) -> bool:
    """Withhold lines that quote a never-send file at a line (`deploy/.env:1 ... 'DB_PASSWORD=...'`, as
    findings and risk evidence do); True when any was. One regex pass over the whole text."""
    text = "\n".join(lines)
    lowered = text.lower()
    if not any(hint in lowered for hint in _NEVER_SEND_HINTS):
        return False
    starts = list(itertools.accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    found: dict[int, tuple[str, str]] = {}
    for colon in _COLON_DIGIT.finditer(text):
        start = end = colon.start()
        while start > 0 and text[start - 1] not in _PATH_STOP:
            start -= 1
        path = text[start:end]
        if not path or not any(hint in path.lower() for hint in _NEVER_SEND_HINTS):
            continue
        reason = never_send_reason(path)
        if reason is not None:
            found.setdefault(bisect.bisect_right(starts, start) - 1, (path, reason))
    for index, (path, reason) in found.items():
        lines[index] = f"[withheld: a line quoting {path}: {reason}]"
        if note is not None:
            note(index + 1, f"{path}: {reason}")
    return bool(found)


def _in_body(lines: list[str], index: int) -> bool:
    line = lines[index]
    if line.startswith(_DIFF_BODY):
        return True
    # an empty context line whose trailing space was stripped, inside a hunk
    return line == "" and index + 1 < len(lines) and lines[index + 1].startswith(_DIFF_BODY)


def _starts_section(lines: list[str], index: int, git_section: bool = False) -> bool:
    """A new file's section starts here; inside a `diff --git` section only another `diff --git` does."""
    line = lines[index]
    if line.startswith("diff --git "):
        return True
    return not git_section and _header_pair(lines, index)


def _header_pair(lines: list[str], index: int) -> bool:
    return (lines[index].startswith("--- ") and index + 2 < len(lines) and lines[index + 1].startswith("+++ ")
            and lines[index + 2].startswith("@@"))


def _section_start(lines: list[str], index: int) -> tuple[str | None, str]:
    """(reason, path) when a diff section of a never-send path starts at `index`."""
    line = lines[index]
    paths: list[str] = []
    if line.startswith("diff --git "):
        # the regex reads paths with spaces; the split catches a header the regex does not parse
        match = _DIFF_GIT.match(line)
        paths = [p.strip('"').removeprefix("a/").removeprefix("b/") for p in line[len("diff --git "):].split()]
        paths += [match["a"], match["b"]] if match else []
    elif _header_pair(lines, index):
        old, new = _OLD_HEADER.match(line), _NEW_HEADER.match(lines[index + 1])
        paths = [m["path"].strip().strip('"') for m in (old, new) if m]
    for path in paths:
        if path in ("/dev/null", "dev/null"):
            continue
        reason = never_send_reason(path)
        if reason is not None:
            return reason, path
    return None, ""
