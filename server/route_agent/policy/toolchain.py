"""Which checks fit a repository: detected from a few files it carries, never by running anything.

`read_repo_facts` reads the handful of files detection looks at (bounded, top level only);
`detect_checks` is a pure function of those facts. Without a repository policy the detected checks
are the default verification (`PolicyCache.for_workspace` layers them over the shipped default), and
`route-agent init` prints them or writes them as `.route-agent/policy.yaml`.

- Python: pytest with a JUnit report; ruff (or flake8) when configured; mypy (or pyright) when configured.
- JavaScript/TypeScript: the package manager of the lock file (npm, pnpm, yarn) running the `test`,
  `lint` and `typecheck` scripts that exist (npm's placeholder test script does not count).
- Go: `go test -json ./...` and `go vet ./...`. Rust: `cargo test` and `cargo clippy`.
- Anything else: no checks, and a note that says what that means (weak checks escalate).

Installed-dependency folders found at the top level (`node_modules` for a Node project, `.venv` or
`venv` for a Python one) become the default `verification.dependency_dirs`: checks see them in the
worktree read-only (workspace/dependencies.py).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from route_agent.policy.models import Check

# Files detection reads (top level of the repository only); anything larger is read as absent.
PROBED_FILES = (
    "pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "pytest.ini", "requirements.txt", "Pipfile", "conftest.py",
    "ruff.toml", ".ruff.toml", ".flake8", "mypy.ini", ".mypy.ini", "pyrightconfig.json",
    "package.json", "package-lock.json", "npm-shrinkwrap.json", "pnpm-lock.yaml", "yarn.lock",
    "go.mod", "Cargo.toml",
)
_MAX_PROBE_BYTES = 256 * 1024
_TEST_DIRS = ("tests", "test")
_PY_TEST_FILE = re.compile(r"^(?:tests|test)/(?:test_.*|.*_test|conftest)\.py$")
# npm init's placeholder: a test script that only says there are no tests is no test script.
_NPM_PLACEHOLDER = re.compile(r"no test specified", re.IGNORECASE)
_NODE_SCRIPTS = (("test", "tests", "tests"), ("lint", "lint", "lint"), ("typecheck", "typecheck", "typecheck"))

NO_CHECKS_NOTE = (
    "no verification found (no Python, JavaScript/TypeScript, Go or Rust project at the top level, or no check to run "
    "in it): a patch is then checked only by the tamper checks and the verifier model, which is weak, so a fast attempt "
    "escalates to the strong lane (`unverified`). Add checks under `verification:` in .route-agent/policy.yaml."
)


@dataclass(frozen=True)
class RepoFacts:
    """What detection looks at: the top-level names and the text of the probed files present."""

    names: frozenset[str]
    files: Mapping[str, str]


@dataclass(frozen=True)
class DetectedChecks:
    toolchains: tuple[str, ...]
    """e.g. ("python",), ("node (npm)",), ("go",): what was found, in the order checks are listed."""
    checks: tuple[Check, ...]
    reasons: tuple[str, ...]
    """One line per check (why it is there), or the no-verification note."""
    dependency_dirs: tuple[str, ...] = ()
    """Installed-dependency folders present at the top level (node_modules, .venv): the default
    `verification.dependency_dirs`, made visible read-only to checks in the worktree."""

    def policy_data(self) -> dict[str, Any]:
        """The `verification:` section these checks make, both lanes (the strong lane with longer timeouts),
        and the dependency folders found."""
        fast = [c.model_dump(exclude_defaults=True) | {"name": c.name, "run": list(c.run)} for c in self.checks]
        strong = [dict(item, timeout_s=min(2 * c.timeout_s, 7200.0)) for item, c in zip(fast, self.checks, strict=True)]
        section: dict[str, Any] = {"fast": fast, "strong": strong}
        if self.dependency_dirs:
            section["dependency_dirs"] = list(self.dependency_dirs)
        return {"verification": section}

    def describe(self) -> str:
        """The checks as one line, the way the transcript's `verification:` line reads."""
        return " && ".join(" ".join(c.run) for c in self.checks) or "(none found)"


def read_repo_facts(root: Path) -> RepoFacts:
    """Read the top-level names and the probed files of `root` (one directory read, a few small files)."""
    try:
        top = {entry.name for entry in os.scandir(root)}
    except OSError:
        return RepoFacts(frozenset(), {})
    for folder in _TEST_DIRS:  # a Python project may carry nothing at the top but its tests folder
        if folder in top:
            with contextlib.suppress(OSError):
                top.update(f"{folder}/{entry.name}" for entry in itertools.islice(os.scandir(root / folder), 1000))
    names = frozenset(top)
    files: dict[str, str] = {}
    for name in PROBED_FILES:
        if name not in names:
            continue
        try:
            with (root / name).open("rb") as handle:
                raw = handle.read(_MAX_PROBE_BYTES + 1)
        except OSError:
            continue
        if len(raw) <= _MAX_PROBE_BYTES:
            files[name] = raw.decode("utf-8", errors="replace")
    return RepoFacts(names, files)


def facts_identity(root: Path) -> tuple[Any, ...]:
    """Changes when anything detection reads changes (the directory's listing or a probed file)."""
    idents: list[Any] = []
    for path in (root, *(root / name for name in _TEST_DIRS), *(root / name for name in PROBED_FILES)):
        try:
            st = path.stat()
        except OSError:
            idents.append(None)
            continue
        idents.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(idents)


def detect_checks(facts: RepoFacts) -> DetectedChecks:
    """The checks the repository's own toolchains run, from its files alone."""
    toolchains: list[str] = []
    checks: list[Check] = []
    reasons: list[str] = []
    for detector in (_python, _node, _go, _rust):
        found = detector(facts)
        if found is None:
            continue
        name, found_checks, found_reasons = found
        toolchains.append(name)
        taken = {c.name for c in checks}
        prefix = name.split(" ", 1)[0]
        for found_check, reason in zip(found_checks, found_reasons, strict=True):
            check = found_check
            if check.name in taken:  # two toolchains in one repository: the second's names get a prefix
                check = check.model_copy(update={"name": f"{prefix}-{check.name}"})
            checks.append(check)
            reasons.append(f"{check.name}: {reason}")
    if not checks:
        empty = [f"{', '.join(toolchains)} found, but it has no check to run"] if toolchains else []
        reasons = [*empty, NO_CHECKS_NOTE]
    return DetectedChecks(tuple(toolchains), tuple(checks), tuple(reasons), detect_dependency_dirs(facts, toolchains))


# Where each toolchain keeps what the user installed inside the repository. Rust's `target` is only a
# cache and Go's module cache lives outside the repository, so neither is listed.
_DEPENDENCY_DIRS = {"node": ("node_modules",), "python": (".venv", "venv")}


def detect_dependency_dirs(facts: RepoFacts, toolchains: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The installed-dependency folders of the toolchains found that exist at the top level."""
    found: list[str] = []
    for toolchain in toolchains:
        found.extend(d for d in _DEPENDENCY_DIRS.get(toolchain.split(" ", 1)[0], ()) if d in facts.names and d not in found)
    return tuple(found)


_Found = tuple[str, list[Check], list[str]] | None
_PY_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "Pipfile", "pytest.ini", "tox.ini", "conftest.py")


def _toml(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def _ini_has(text: str | None, section: str) -> bool:
    return bool(text) and re.search(rf"^\[{re.escape(section)}\]", text or "", re.MULTILINE) is not None


def _python(facts: RepoFacts) -> _Found:
    if not any(m in facts.names for m in _PY_MARKERS) and not any(
            ("/" not in n and n.endswith(".py")) or _PY_TEST_FILE.match(n) for n in facts.names):
        return None
    tool = _toml(facts.files.get("pyproject.toml")).get("tool", {})
    tool = tool if isinstance(tool, dict) else {}
    setup_cfg, tox_ini = facts.files.get("setup.cfg"), facts.files.get("tox.ini")
    checks = [Check(name="tests", kind="tests", run=["python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                                     "--junitxml=.route-agent/junit.xml"],
                    parser="junit", report=".route-agent/junit.xml", timeout_s=300)]
    reasons = ["a Python project: pytest with a JUnit report (exit 5, no test collected, is a weak check)"]
    if "ruff" in tool or "ruff.toml" in facts.names or ".ruff.toml" in facts.names:
        checks.append(Check(name="lint", kind="lint", run=["python", "-m", "ruff", "check", "--output-format=concise", "."],
                            parser="problem-matcher", timeout_s=120))
        reasons.append("ruff is configured")
    elif ".flake8" in facts.names or _ini_has(setup_cfg, "flake8") or _ini_has(tox_ini, "flake8"):
        checks.append(Check(name="lint", kind="lint", run=["python", "-m", "flake8", "."], parser="problem-matcher", timeout_s=120))
        reasons.append("flake8 is configured")
    mypy_cfg = tool.get("mypy")
    if (mypy_cfg is not None or "mypy.ini" in facts.names or ".mypy.ini" in facts.names
            or _ini_has(setup_cfg, "mypy")):
        # With `files` configured mypy knows what to check; otherwise it needs a target.
        has_files = (isinstance(mypy_cfg, dict) and "files" in mypy_cfg) or any(
            re.search(r"^files\s*=", facts.files.get(n) or "", re.MULTILINE) for n in ("mypy.ini", ".mypy.ini", "setup.cfg"))
        run = ["python", "-m", "mypy"] if has_files else ["python", "-m", "mypy", "."]
        checks.append(Check(name="typecheck", kind="typecheck", run=run, parser="problem-matcher", timeout_s=300))
        reasons.append("mypy is configured")
    elif "pyright" in tool or "pyrightconfig.json" in facts.names:
        checks.append(Check(name="typecheck", kind="typecheck", run=["pyright"], parser="exit-code", timeout_s=300))
        reasons.append("pyright is configured")
    return "python", checks, reasons


def _package_manager(facts: RepoFacts, manifest: Mapping[str, Any]) -> str:
    if "pnpm-lock.yaml" in facts.names:
        return "pnpm"
    if "yarn.lock" in facts.names:
        return "yarn"
    if "package-lock.json" in facts.names or "npm-shrinkwrap.json" in facts.names:
        return "npm"
    declared = manifest.get("packageManager")
    if isinstance(declared, str) and declared.split("@", 1)[0] in ("pnpm", "yarn", "npm"):
        return declared.split("@", 1)[0]
    return "npm"


def _node(facts: RepoFacts) -> _Found:
    if "package.json" not in facts.names:
        return None
    try:
        manifest = json.loads(facts.files.get("package.json") or "{}")
    except json.JSONDecodeError:
        manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    scripts = manifest.get("scripts")
    scripts = scripts if isinstance(scripts, dict) else {}
    manager = _package_manager(facts, manifest)
    checks: list[Check] = []
    reasons: list[str] = []
    for script, name, kind in _NODE_SCRIPTS:
        body = scripts.get(script)
        if not isinstance(body, str) or not body.strip() or (script == "test" and _NPM_PLACEHOLDER.search(body)):
            continue
        # Type checkers and linters print `file:line:col` or tsc's `file(line,col)`: parse them into findings.
        parser = "exit-code" if kind == "tests" else "problem-matcher"
        run = [manager, "test"] if script == "test" else [manager, "run", script]
        checks.append(Check(name=name, kind=kind, run=run, parser=parser, timeout_s=300 if kind == "tests" else 120))
        reasons.append(f"package.json has a `{script}` script (run with {manager})")
    return f"node ({manager})", checks, reasons


def _go(facts: RepoFacts) -> _Found:
    if "go.mod" not in facts.names:
        return None
    return "go", [
        Check(name="tests", kind="tests", run=["go", "test", "-json", "./..."], parser="go-test-json", timeout_s=300),
        Check(name="vet", kind="lint", run=["go", "vet", "./..."], parser="problem-matcher", timeout_s=120),
    ], ["go.mod: go test -json (no test files is a weak check)", "go.mod: go vet"]


def _rust(facts: RepoFacts) -> _Found:
    if "Cargo.toml" not in facts.names:
        return None
    return "rust", [
        Check(name="tests", kind="tests", run=["cargo", "test", "--quiet"], parser="exit-code", timeout_s=600),
        Check(name="clippy", kind="lint", run=["cargo", "clippy", "--quiet", "--", "-D", "warnings"], parser="exit-code", timeout_s=600),
    ], ["Cargo.toml: cargo test (running 0 tests is a weak check)", "Cargo.toml: cargo clippy"]
