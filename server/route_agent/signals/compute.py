"""Compute risk signals from facts: a change set, a brief (tainted) and test failures.

Pure: no git, no files, no network. Every raised signal carries its evidence (paths and lines), so
the score built from it can be explained line by line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from route_agent.signals import detectors
from route_agent.signals.changeset import ChangedFile, ChangeSet
from route_agent.signals.paths import PathMatcher, is_code_path, is_route_agent_file
from route_agent.signals.taint import (
    DOCS_ONLY,
    INCIDENT,
    MANIPULATION,
    NEW_CODE,
    CleanText,
    HiddenRun,
    clean_tainted,
    find_phrase,
)

MAX_EVIDENCE = 20


@dataclass(frozen=True, slots=True)
class Evidence:
    path: str | None = None
    line: int | None = None
    excerpt: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        fields = (("path", self.path), ("line", self.line), ("excerpt", self.excerpt), ("detail", self.detail))
        return {k: v for k, v in fields if v is not None}

    def __str__(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where += f":{self.line}"
        parts = [p for p in (where, self.detail, repr(self.excerpt) if self.excerpt else None) if p]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class RaisedSignal:
    name: str
    reason: str
    evidence: tuple[Evidence, ...] = ()
    count: int = 1


@dataclass(frozen=True)
class TestFailures:
    __test__ = False  # not a pytest test class, whatever its name
    count: int = 0
    source: str | None = None
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Signals:
    files_touched: int
    has_schema_change: bool
    has_auth_code: bool
    test_failures: int
    needs_new_code: bool
    raised: dict[str, RaisedSignal] = field(default_factory=dict)
    hidden_characters: tuple[HiddenRun, ...] = ()
    brief: str = ""
    paths: tuple[str, ...] = ()
    """The change set's paths, for evidence."""
    brief_only: tuple[str, ...] = ()
    """Raised signals whose only evidence is the brief: they add points, they do not force the
    strong lane (`auth_code` from a word in the brief alone)."""

    def summary_line(self) -> str:
        return (
            f"files={self.files_touched} schema_change={_b(self.has_schema_change)} "
            f"auth_code={_b(self.has_auth_code)} test_failures={self.test_failures} "
            f"new_code={_b(self.needs_new_code)}"
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "files_touched": self.files_touched,
            "has_schema_change": self.has_schema_change,
            "has_auth_code": self.has_auth_code,
            "test_failures": self.test_failures,
            "needs_new_code": self.needs_new_code,
        }
        for name in sorted(self.raised):
            if name not in ("schema_change", "auth_code", "test_failures", "new_code", "files"):
                out[name] = self.raised[name].count
        if self.hidden_characters:
            out["hidden_characters"] = [
                {"kind": run.kind, "offset": run.offset, "count": run.count, **({"decoded": run.decoded} if run.decoded else {})}
                for run in self.hidden_characters
            ]
        return out


def _b(value: bool) -> str:
    return "true" if value else "false"


# A definition and the name it defines: the keyword must be a whole word followed by a name
# (`default_field = ...`, `classes`, `fnord` are not definitions).
_DEFINITION = re.compile(
    r"^\s*(?:(?:export\s+)?(?:default\s+)?(?:pub(?:\([\w:]+\))?\s+)?(?:async\s+)?(?:unsafe\s+)?"
    r"(?:def|class|function\*?|fn|interface|struct|trait|enum|module|type)\s+(?P<name>[A-Za-z_$][\w$]*)"
    r"|func\s+(?:\([^)]*\)\s*)?(?P<go>[A-Za-z_]\w*)"
    r"|type\s+(?P<gotype>[A-Za-z_]\w*)\s+(?:struct|interface)\b"
    r"|(?:export\s+)?(?:const|let|var)\s+(?P<arrow>[A-Za-z_$][\w$]*)\s*(?::[^=]+)?=\s*(?:async\s+)?"
    r"(?:function\b|\([^)]*\)\s*(?::[^=]+)?=>|[A-Za-z_$][\w$]*\s*=>))"
)


def defined_names(lines: tuple[tuple[int, str], ...]) -> dict[str, tuple[int, str]]:
    """The names `lines` define (function, class, method...), each with its first defining line."""
    names: dict[str, tuple[int, str]] = {}
    for number, text in lines:
        match = _DEFINITION.match(text)
        if match is None:
            continue
        name = match.group("name") or match.group("go") or match.group("gotype") or match.group("arrow")
        if name and name not in names:
            names[name] = (number, text)
    return names


def _substantive(lines: tuple[tuple[int, str], ...]) -> bool:
    """Whether a new file holds anything but blank lines."""
    return any(text.strip() for _, text in lines)


class _Collector:
    def __init__(self) -> None:
        self.items: dict[str, tuple[str, list[Evidence], int]] = {}

    def add(self, name: str, reason: str, evidence: Evidence, count: int = 1) -> None:
        reason0, ev, n = self.items.get(name, (reason, [], 0))
        if len(ev) < MAX_EVIDENCE:
            ev.append(evidence)
        self.items[name] = (reason0, ev, n + count)

    def has(self, name: str) -> bool:
        return name in self.items

    def result(self) -> dict[str, RaisedSignal]:
        return {name: RaisedSignal(name, reason, tuple(ev), n) for name, (reason, ev, n) in self.items.items()}


def compute_signals(
    change_set: ChangeSet,
    brief: str,
    matcher: PathMatcher,
    test_failures: TestFailures | None = None,
    brief_clean: CleanText | None = None,
) -> Signals:
    """All signals for one task. `brief` is tainted: it may raise signals, never clear them."""
    found = _Collector()
    moved = _moved_paths(change_set.files)
    for changed in change_set.files:
        _file_signals(changed, matcher, found, changed.path in moved)
    from_files = set(found.items)
    clean = brief_clean if brief_clean is not None else clean_tainted(brief)
    _brief_signals(clean, found)
    failures = test_failures or TestFailures()
    if failures.count > 0:
        reason = f"{failures.count} failing test(s)" + (f" in {failures.source}" if failures.source else "")
        evidence = list(failures.evidence[:MAX_EVIDENCE]) or [Evidence(detail=failures.source)]
        found.items["test_failures"] = (reason, evidence, failures.count)
    raised = found.result()
    brief_only = tuple(name for name in _BRIEF_ONLY_WEAK if name in raised and name not in from_files)
    return Signals(
        files_touched=len(change_set.files) - len(moved) // 2,
        has_schema_change="schema_change" in raised,
        has_auth_code="auth_code" in raised and "auth_code" not in brief_only,
        test_failures=max(0, failures.count),
        needs_new_code="new_code" in raised,
        raised=raised,
        hidden_characters=clean.hidden,
        brief=clean.text,
        paths=change_set.paths,
        brief_only=brief_only,
    )


_BRIEF_ONLY_WEAK = ("auth_code",)
"""Signals that a word in the brief alone raises for points but that do not reach the floor: auth
is code that authenticates or authorizes, so the change set has to show it."""


def _file_signals(changed: ChangedFile, matcher: PathMatcher, found: _Collector, moved: bool = False) -> None:  # noqa: PLR0912, PLR0915 (one branch per signal a changed file can raise)
    path = changed.path
    classes = matcher.classify(path)
    if changed.old_path and changed.old_path != path:
        classes = classes + matcher.classify(changed.old_path)
    class_names = {m.path_class for m in classes}
    not_code = bool(class_names & {"docs", "tests"})
    for match in classes:
        name = match.path_class
        if (not_code and name in ("schema_change", "auth_code")) or \
                (name == "auth_code" and detectors.path_suffix(path) in _ASSET_SUFFIXES):
            continue  # a migration fixture in a test, a page about permissions, a login template: no schema or auth code
        detail = f"matches path rule {match.glob!r}"
        if name in ("schema_change", "auth_code", "secrets_handling", "ci_config", "deploy_config"):
            found.add(name, _PATH_REASONS[name], Evidence(path=path, line=1 if changed.status != "deleted" else None, detail=detail))
        elif name == "dependency_manifest":
            found.add("dependency_change", "dependency manifest changed", Evidence(path=path, detail=detail))
        elif name == "sensitive":
            found.add("sensitive_path", "sensitive path (policy paths.sensitive)", Evidence(path=path, detail=detail))
        elif name.startswith("custom:"):
            found.add(name, f"custom rule {name[7:]}", Evidence(path=path, detail=detail))
    lookalike = matcher.lookalike(path)
    if lookalike is not None:
        found.add("lookalike_path", f"path imitates a protected path ({lookalike.path_class})",
                  Evidence(path=path, detail=f"looks like a match for {lookalike.glob!r} using non-ASCII characters"))
    if changed.is_symlink:
        found.add("file_mode_change", "symlink added, changed or removed",
                  Evidence(path=path, detail=f"mode {changed.old_mode}->{changed.new_mode}"))
    elif changed.is_submodule:
        found.add("file_mode_change", "submodule pointer changed", Evidence(path=path, detail="gitlink"))
    elif changed.exec_bit_changed:
        found.add("file_mode_change", "executable bit changed", Evidence(path=path, detail=f"mode {changed.old_mode}->{changed.new_mode}"))
    if changed.status == "deleted" and not moved:
        found.add("deletions", "file(s) deleted", Evidence(path=path, detail=f"{len(changed.removed)} line(s) removed"))
    if changed.binary:
        found.add("binary_change", "binary file changed", Evidence(path=path))
    if changed.truncated:
        found.add("truncated_input", "part of a file was too large to examine", Evidence(path=path))
    if changed.binary or changed.is_submodule:
        return
    # Lines removed and added again with only their indentation changed are not a change of meaning.
    added, removed = _without_reindented(changed.added, changed.removed)
    lines = added + removed
    # For schema, a field moved within its model or with a comment or spacing changed is the same field.
    same_added, same_removed = _without_reindented(changed.added, changed.removed, moves=True)
    # (Prose lines are kept for schema: a line of SQL in a multi-line string reads like words.)
    schema_lines = tuple(item for item in same_added + same_removed if not _is_comment(item[1]))
    lowered = detectors.lowered_text(lines)  # one keyword prefilter text for every rule set
    prose_or_test = bool(class_names & {"docs", "tests"}) or detectors.path_suffix(path) in _PROSE_SUFFIXES
    if not prose_or_test and not is_route_agent_file(path):
        # Schema and auth are about code: words in docs, a model in a test, a commented-out line are not.
        code_lines = tuple(item for item in lines if not _is_comment(item[1]) and not _is_prose(item[1]))
        content_rules: tuple[tuple[tuple[detectors.Rule, ...], str, str], ...] = (
            (detectors.SCHEMA_RULES, "schema_change", "schema change in the changed lines"),
            (detectors.AUTH_RULES, "auth_code", "authentication or authorization code in the changed lines"),
        )
        if not is_code_path(path):
            content_rules = content_rules[:1]  # an `oauth2==1.5` pin in tox.ini, `input[type=password]` in CSS
        for rule_set, name, reason in content_rules:
            scanned = schema_lines if name == "schema_change" else code_lines
            for hit in detectors.scan_lines(rule_set, path, scanned, limit=3, lowered=lowered):
                found.add(name, reason, Evidence(path=path, line=hit.line, excerpt=hit.excerpt, detail=hit.rule))
    for hit in detectors.scan_lines(detectors.DEPLOY_RULES, path, lines, limit=3, lowered=lowered):
        found.add("deploy_config", "deployment manifest in the changed lines",
                  Evidence(path=path, line=hit.line, excerpt=hit.excerpt, detail=hit.rule))
    if is_ci_makefile(path):
        for hit in detectors.scan_lines(detectors.CI_MAKE_RULES, path, lines, limit=3, lowered=lowered):
            found.add("ci_config", _PATH_REASONS["ci_config"],
                      Evidence(path=path, line=hit.line, excerpt=hit.excerpt, detail=hit.rule))
    for hit in detectors.scan_lines(detectors.SECRET_RULES, path, changed.added, limit=3, lowered=lowered):
        found.add("secret_in_content", "a secret-like value in the added lines",
                  Evidence(path=path, line=hit.line, detail=f"{hit.rule} (value withheld)"))
    if moved or "docs" in class_names or not is_code_path(path):
        return
    if changed.status in ("added", "untracked"):
        if _substantive(changed.added):
            found.add("new_code", "new code file", Evidence(path=path, detail="new file"))
        return
    # New code is a definition whose name the file did not define before: a changed signature or
    # body keeps its name. Only the changed lines are known here, so "before" is the removed lines.
    before = defined_names(changed.removed)
    for name, (number, text) in defined_names(added).items():
        if name not in before:
            found.add("new_code", "new function or class", Evidence(path=path, line=number, excerpt=text.strip()[:80]))
            break


_ASSET_SUFFIXES = frozenset({".html", ".htm", ".css", ".scss", ".less", ".svg", ".png", ".jpg", ".gif", ".ico", ".po", ".mo"})
_PROSE_SUFFIXES = frozenset({".md", ".rst", ".txt", ".adoc", ".html", ".htm", ".textile", ".po", ".pot"})
_COMMENT_PREFIXES = ("#", "//", "--", "/*", "*", "<!--", "{#", ";")


def _is_comment(text: str) -> bool:
    stripped = text.lstrip()
    return stripped.startswith(_COMMENT_PREFIXES) and not stripped.startswith(("#!", "#[", "#include", "#define"))


_PROSE = re.compile(r"[A-Za-z`][A-Za-z0-9`'\",.;:!?/\- ]*")
_CODE_WORDS = frozenset({"import", "from", "return", "raise", "assert", "def", "class", "if", "elif", "else", "for", "while",
                         "yield", "lambda", "with", "try", "except", "pass", "del", "global", "await", "async", "not"})


def _is_prose(text: str) -> bool:
    """A line of words, as in a docstring or a multi-line comment: no code punctuation or
    snake_case, four words or more, not starting with a keyword."""
    stripped = text.strip().strip("\"'*").strip()
    words = stripped.split()
    return len(words) >= 4 and words[0] not in _CODE_WORDS and _PROSE.fullmatch(stripped) is not None


def _without_reindented(added: tuple[tuple[int, str], ...], removed: tuple[tuple[int, str], ...],
                        moves: bool = False) -> tuple[tuple[tuple[int, str], ...], tuple[tuple[int, str], ...]]:
    """Added and removed lines without the pairs that differ only in spacing or a trailing comment.

    A line moved unchanged (same text, indentation included) is a reorder, which can matter
    (authenticate before checking permissions): it is dropped only when `moves` is true."""
    if not added or not removed:
        return added, removed
    exact: Counter[str] = Counter() if moves else Counter(text for _, text in removed) & Counter(text for _, text in added)
    gone = Counter(_layout_free(text) for _, text in removed if text not in exact)
    back = Counter(_layout_free(text) for _, text in added if text not in exact)
    same = gone & back
    if not same:
        return added, removed
    return _drop(added, Counter(same)), _drop(removed, same)


_TRAILING_COMMENT = re.compile(r"\s(#|//)[^'\"]*$")


def _layout_free(text: str) -> str:
    """A line without its trailing comment and without any whitespace: what a formatter changes."""
    return "".join(_TRAILING_COMMENT.sub("", text).split())


def _drop(lines: tuple[tuple[int, str], ...], counts: Counter[str]) -> tuple[tuple[int, str], ...]:
    kept: list[tuple[int, str]] = []
    for item in lines:
        key = _layout_free(item[1])
        if counts[key] > 0:
            counts[key] -= 1
        else:
            kept.append(item)
    return tuple(kept)


_MAKEFILES = frozenset({"Makefile", "makefile", "GNUmakefile"})


def is_ci_makefile(path: str) -> bool:
    """A Makefile (or `*.mk`): its targets are what CI runs when their recipes run checks."""
    name = path.rpartition("/")[2]
    return name in _MAKEFILES or name.endswith(".mk")


def _moved_paths(files: tuple[ChangedFile, ...]) -> frozenset[str]:
    """Paths of deleted and added files that are one file renamed (git reports them apart with
    --no-renames): at least half of the lines kept, as git's default rename similarity; a tiny file
    only when its name or its whole content is kept, an empty one only when its name is kept."""
    deleted = [(f.path, Counter(text for _, text in f.removed), len(f.removed)) for f in files if f.status == "deleted"]
    created = [(f.path, Counter(text for _, text in f.added), len(f.added)) for f in files if f.status in ("added", "untracked")]
    if not deleted or not created:
        return frozenset()
    moved: set[str] = set()
    budget = _MAX_RENAME_COMPARISONS
    for old_path, old_lines, old_count in deleted:
        for new_path, new_lines, new_count in created:
            if new_path in moved:
                continue
            if not old_count and not new_count:
                similar = old_path.rpartition("/")[2] == new_path.rpartition("/")[2]
            elif min(old_count, new_count) * 2 < max(old_count, new_count) or budget <= 0:
                similar = False
            else:
                budget -= 1
                kept = sum((old_lines & new_lines).values())
                same_name = old_path.rpartition("/")[2] == new_path.rpartition("/")[2]
                similar = kept * 2 >= max(old_count, new_count) and \
                    (kept >= _MIN_KEPT_LINES or same_name or old_lines == new_lines)
            if similar:
                moved.update((old_path, new_path))
                break
    return frozenset(moved)


_MIN_KEPT_LINES = 3
"""Under a new name, a rename keeps at least this many lines (two one-line files are not one file)."""
_MAX_RENAME_COMPARISONS = 2000
"""Deleted-and-added pairs compared at most (a change set of hundreds of each stays fast)."""


_PATH_REASONS = {
    "schema_change": "schema or migration file",
    "auth_code": "authentication or authorization path",
    "secrets_handling": "secrets handling path",
    "ci_config": "CI configuration",
    "deploy_config": "deployment configuration",
}


def _brief_signals(clean: CleanText, found: _Collector) -> None:
    if clean.hidden:
        kinds = sorted({run.kind for run in clean.hidden})
        total = sum(run.count for run in clean.hidden)
        detail = f"{total} hidden character(s) stripped: {', '.join(kinds)}"
        if clean.smuggled:
            detail += f"; tag characters spell {clean.smuggled[:120]!r}"
        found.add("hidden_characters", "hidden characters in the brief", Evidence(path="brief", detail=detail), total)
    if clean.truncated:
        found.add("truncated_input", "the brief was cut to 16 KB", Evidence(path="brief", detail=f"{clean.original_length} characters"))
    if not clean.folded.strip():
        return
    phrase = find_phrase(MANIPULATION, clean.folded)
    if phrase:
        found.add("brief_manipulation", "the brief tries to steer routing (ignored, adds risk)", Evidence(path="brief", excerpt=phrase))
    phrase = find_phrase(INCIDENT, clean.folded)
    if phrase:
        found.add("production_incident", "the brief mentions a production incident", Evidence(path="brief", excerpt=phrase))
    phrase = find_phrase(NEW_CODE, clean.folded)
    if phrase and not DOCS_ONLY.search(clean.folded):
        found.add("new_code", "the brief asks for new code", Evidence(path="brief", excerpt=phrase))
    examined = clean.scanned or clean.text
    text = examined if not clean.smuggled else examined + "\n" + clean.smuggled
    numbered = list(enumerate(text.splitlines(), start=1))
    for rule_set, name, reason in (
        (detectors.SCHEMA_RULES, "schema_change", "the brief describes a schema change"),
        (detectors.AUTH_RULES, "auth_code", "the brief concerns authentication or authorization"),
    ):
        for hit in detectors.scan_lines(rule_set, "brief", numbered, limit=2):
            found.add(name, reason, Evidence(path="brief", line=hit.line, excerpt=hit.excerpt, detail=hit.rule))
    for hit in detectors.scan_lines(detectors.SECRET_RULES, "brief", numbered, limit=2):
        found.add("secret_in_content", "a secret-like value in the brief",
                  Evidence(path="brief", line=hit.line, detail=f"{hit.rule} (value withheld)"))
