"""Execution surface: files that make other tools run code, found in a lane's patch.

A patch that adds or edits one of these changes what runs on the user's machine the next time they
use git, their shell, Python, cargo, npm or make, whatever the checks said about the code. Each is a
`scope` finding with rule `execution_surface` (so the attempt escalates, and it is named in the
transcript) unless the task's own change set already touched that path.

    execution_surface(path) -> str | None                 # why the path runs code, or None
    surface_findings(patch, task_paths) -> list[Finding]
"""

from __future__ import annotations

from collections.abc import Collection

from route_agent.signals.changeset import ChangeSet
from route_agent.verify.findings import Finding

_NAMES = {
    ".gitattributes": "git attributes (filter, diff and merge drivers run commands)",
    ".gitmodules": "git submodules (a URL such as ext:: runs a command on clone or update)",
    ".lfsconfig": "git LFS configuration (where objects are fetched from)",
    ".envrc": "a direnv script (runs in the user's shell on cd)",
    ".pre-commit-config.yaml": "pre-commit hooks (run on every commit)",
    ".pre-commit-hooks.yaml": "pre-commit hook definitions",
    "sitecustomize.py": "Python start-up code (runs in every interpreter that finds it)",
    "usercustomize.py": "Python start-up code (runs in every interpreter that finds it)",
    ".npmrc": "npm configuration (scripts, registries, node options)",
    ".yarnrc": "yarn configuration",
    ".yarnrc.yml": "yarn configuration (plugins, paths run by yarn)",
    ".pnpmfile.cjs": "a pnpm hook file (runs on install)",
    "makefile": "a Makefile (recipes run by make)",
    "gnumakefile": "a Makefile (recipes run by make)",
    "setup.py": "a setup.py (runs on install and build)",
    "build.rs": "a Cargo build script (runs on build)",
}
_CARGO_CONFIG = ("config", "config.toml")


def execution_surface(path: str) -> str | None:
    """Why `path` makes another tool run code, or None."""
    parts = path.split("/")
    name = parts[-1].lower()
    if name in _NAMES:
        return _NAMES[name]
    if name.endswith(".pth"):
        return "a Python .pth file (its import lines run at interpreter start-up)"
    if name.endswith(".mk"):
        return "a make include file (recipes run by make)"
    if len(parts) >= 2 and parts[-2].lower() == ".cargo" and name in _CARGO_CONFIG:
        return "Cargo configuration (runners, rustc wrappers, aliases)"
    return None


def surface_findings(patch: ChangeSet, task_paths: Collection[str]) -> list[Finding]:
    """One finding per execution-surface path the patch touches and the task did not."""
    findings: list[Finding] = []
    for changed in patch.files:
        why = execution_surface(changed.path)
        if why is None or changed.path in task_paths:
            continue
        detail = ""
        added = "\n".join(text for _, text in changed.added)
        if changed.path.endswith(".gitmodules") and "ext::" in added:
            detail = "; it adds an ext:: URL, which runs a command"
        line = changed.added[0][0] if changed.added else None
        findings.append(Finding("rescore", f"the patch changes {changed.path}: {why}{detail}; "
                                           "it changes what other tools run on your machine",
                                "error", changed.path, line, rule="execution_surface", kind="scope"))
    return findings


__all__ = ["execution_surface", "surface_findings"]
