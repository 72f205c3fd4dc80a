"""Change sets for evaluation tasks: what is known before solving (pre-task) or the reference patch (gold).

Pre-task: the problem statement names files (paths, module paths, file names); each becomes a
`ChangedFile` with no content lines, because the diff is unknown before the task is solved. The
paths still feed the policy's path rules and the file count. Only the repository name and the
statement are read here: the reference patch never reaches this function.

Gold: the reference patch parsed into a change set (added/removed lines and statuses). Signals from
it are known only after solving: a leaky upper bound, labelled as such wherever it is shown.
"""

from __future__ import annotations

import re

from route_agent.signals.changeset import ChangedFile, ChangeSet
from route_agent.signals.diffparse import DiffParseError, change_set_from_diff
from route_agent.workspace.git import WorkspaceError

MAX_PRETASK_FILES = 50

# File extensions that make a bare token look like a repository file.
FILE_SUFFIXES = (
    "py", "pyi", "pyx", "pxd", "c", "cc", "cpp", "h", "hpp", "js", "jsx", "ts", "tsx", "mjs", "cjs", "go",
    "rb", "java", "kt", "scala", "cs", "php", "rs", "swift", "sh", "sql", "cfg", "toml", "ini", "yaml",
    "yml", "json", "rst", "md", "txt", "html", "css", "scss", "jinja", "j2", "tex", "xml", "proto",
    "graphql", "prisma", "lock", "in",
)
_SUFFIX_ALT = "|".join(sorted(FILE_SUFFIXES, key=len, reverse=True))
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
# a/b/c.ext (optionally absolute or ./-prefixed); components are word characters, dots and dashes.
_SLASH_PATH = re.compile(rf"(?<![\w/.-])(?:\.{{0,2}}/)?((?:[\w.-]+/)+[\w.-]+\.(?:{_SUFFIX_ALT}))(?![\w/-])")
_BARE_FILE = re.compile(rf"(?<![\w/.-])([A-Za-z_][\w-]*\.(?:{_SUFFIX_ALT}))(?![\w/.-]|\.\w)")
_MODULE = re.compile(r"(?<![\w./-])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*){1,8})(?![\w/-]|\.\w)")
_ENV_DIRS = ("site-packages/", "dist-packages/")


def package_names(repo: str) -> set[str]:
    """Top-level package names a repository's modules plausibly start with (from its name only)."""
    name = repo.rsplit("/", 1)[-1].lower()
    names = {name, name.replace("-", "_"), name.replace("-", "")}
    return {n for n in names if n.isidentifier()}


def _normalise_path(raw: str, roots: set[str]) -> str | None:
    path = raw
    while path.startswith(("./", "../")):
        path = path.split("/", 1)[1]
    for marker in _ENV_DIRS:  # an installed copy of the package: keep the part after site-packages
        if marker in path:
            path = path.rsplit(marker, 1)[1]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if raw.startswith("/") or (len(parts) > 1 and parts[0] in ("home", "usr", "tmp", "opt", "Users", "var")):
        # An absolute path from a traceback: keep it from the repository's package directory on.
        for index, part in enumerate(parts):
            if part in roots:
                parts = parts[index:]
                break
        else:
            return None
    if len(parts) > 2 and parts[0] in ("a", "b") and parts[1] in roots:
        parts = parts[1:]  # a path quoted from a diff header (a/pkg/mod.py, b/pkg/mod.py)
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def pretask_paths(repo: str, statement: str) -> tuple[str, ...]:
    """Repository files the problem statement names, in order of first mention (at most 50)."""
    text = _URL.sub(" ", statement)
    roots = package_names(repo)
    found: list[str] = []
    seen: set[str] = set()

    def add(path: str | None) -> None:
        if path and path not in seen and len(found) < MAX_PRETASK_FILES:
            seen.add(path)
            found.append(path)

    slash_paths = [m.group(0) for m in _SLASH_PATH.finditer(text)]
    for raw in slash_paths:
        add(_normalise_path(raw, roots))
    # Directories that the named paths start in are package roots too (e.g. `sklearn/...`).
    roots |= {p.split("/", 1)[0] for p in found if "/" in p}
    basenames = {p.rsplit("/", 1)[-1] for p in found}
    for match in _MODULE.finditer(text):
        dotted = match.group(1)
        parts = dotted.split(".")
        if parts[0] not in roots or parts[-1] in FILE_SUFFIXES:
            continue
        # Drop trailing attributes: a class (CamelCase) and what follows it is not a module.
        for index, part in enumerate(parts[1:], start=1):
            if part[:1].isupper():
                parts = parts[:index]
                break
        if len(parts) >= 3:  # pkg.sub.module; `pkg.sub` names a package more often than a file
            add("/".join(parts) + ".py")
    for match in _BARE_FILE.finditer(text):
        name = match.group(1)
        if name not in basenames and name.rsplit(".", 1)[0] not in roots:
            basenames.add(name)
            add(name)
    return tuple(found)


def pretask_change_set(repo: str, statement: str) -> ChangeSet:
    """The change set known before solving: the named files, status `modified`, no lines."""
    return ChangeSet(files=tuple(ChangedFile(path=p, status="modified") for p in pretask_paths(repo, statement)))


def gold_change_set(patch: str) -> ChangeSet:
    """The reference patch as a change set (leaky: known only after the task is solved)."""
    try:
        parsed = change_set_from_diff(patch)
    except DiffParseError as exc:
        raise WorkspaceError(str(exc)) from None
    return ChangeSet(files=tuple(sorted(parsed.files, key=lambda f: f.path)))
