"""Path classes from gitignore-style globs (pathspec), plus look-alike detection for protected paths.

fnmatch is not used: its `*` crosses `/`, which is wrong for path rules as well as slow.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import pathspec

from route_agent.policy.floor import FLOOR_GLOBS
from route_agent.policy.models import Policy

PATH_CLASSES = (
    "schema_change",
    "auth_code",
    "secrets_handling",
    "ci_config",
    "deploy_config",
    "dependency_manifest",
    "sensitive",
    "docs",
    "tests",
    "snapshots",
)
PROTECTED_CLASSES = ("schema_change", "auth_code", "secrets_handling", "ci_config", "deploy_config")

# Characters that look like ASCII letters (a practical subset of Unicode's confusables.txt).
_CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "к": "k", "м": "m",
    "т": "t", "в": "b", "н": "h", "ո": "n", "ս": "u", "α": "a", "ο": "o", "ρ": "p", "ι": "i",
    "ν": "v", "κ": "k", "τ": "t", "υ": "u", "χ": "x", "ε": "e", "ϲ": "c", "ɩ": "i", "ı": "i",
    "ℓ": "l", "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "／": "/", "∕": "/", "⁄": "/",
    "․": ".", "｡": ".", "。": ".",
    # Capitals, for case-sensitive names such as Dockerfile and Jenkinsfile.
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W", "Α": "A",
    "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})


def skeleton(path: str, fold: bool = True) -> str:
    """A path reduced to the ASCII it imitates: NFKC, case folding (unless `fold` is false),
    confusables mapped."""
    normal = unicodedata.normalize("NFKC", path)
    return (normal.casefold() if fold else normal).translate(_CONFUSABLES)


@dataclass(frozen=True)
class PathMatch:
    path_class: str
    glob: str


class PathMatcher:
    """Classifies repository-relative paths; built once per policy."""

    def __init__(self, policy: Policy) -> None:
        self._specs: dict[str, tuple[pathspec.GitIgnoreSpec, list[str]]] = {}
        for name in PATH_CLASSES:
            globs = [*FLOOR_GLOBS.get(name, ()), *getattr(policy.paths, name)]
            if globs:
                self._specs[name] = (pathspec.GitIgnoreSpec.from_lines(globs), globs)
        self._custom = [
            (rule.name, pathspec.GitIgnoreSpec.from_lines(rule.globs), list(rule.globs)) for rule in policy.custom_rules
        ]
        self._cache: dict[str, tuple[PathMatch, ...]] = {}

    def classify(self, path: str) -> tuple[PathMatch, ...]:
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        found: list[PathMatch] = []
        for name, (spec, globs) in self._specs.items():
            hit = _check(spec, globs, path)
            if hit is not None:
                found.append(PathMatch(name, hit))
        for name, spec, globs in self._custom:
            hit = _check(spec, globs, path)
            if hit is not None:
                found.append(PathMatch(f"custom:{name}", hit))
        result = tuple(found)
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[path] = result
        return result

    def lookalike(self, path: str) -> PathMatch | None:
        """A protected class the path imitates with non-ASCII look-alikes, if any."""
        if path.isascii():
            return None
        real = {m.path_class for m in self.classify(path)}
        # Case kept first: globs are case-sensitive (`Dockerfile`), as git is on most systems.
        for fold in (False, True):
            fake = skeleton(path, fold)
            if not fake.isascii():
                fake = "".join(ch for ch in fake if ch.isascii())
            for match in self.classify(fake):
                if match.path_class in PROTECTED_CLASSES and match.path_class not in real:
                    return match
        return None


def _check(spec: pathspec.GitIgnoreSpec, globs: list[str], path: str) -> str | None:
    result = spec.check_file(path)
    if result.include and result.index is not None:
        return globs[result.index]
    return None


ROUTE_AGENT_FILES = (".route-agent/", ".route-agent.yaml")
"""route-agent's own files in a repository: its policy, the latest test report."""


def is_route_agent_file(path: str) -> bool:
    """A file route-agent itself reads or writes in the repository. Its content is never scored as
    schema or auth code (`paths:` in a policy is not OpenAPI); a patch that touches one is still
    caught by the tamper checks."""
    return path.startswith(ROUTE_AGENT_FILES[0]) or path == ROUTE_AGENT_FILES[1]


def is_code_path(path: str) -> bool:
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in _CODE_SUFFIXES


_CODE_SUFFIXES = {
    ".py", ".pyi", ".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".go", ".rb", ".java", ".kt", ".kts",
    ".scala", ".cs", ".php", ".rs", ".swift", ".ex", ".exs", ".c", ".cc", ".cpp", ".h", ".hpp", ".m",
    ".sh", ".sql", ".vue", ".svelte", ".lua", ".pl", ".r", ".jl", ".dart", ".clj", ".hs", ".ml", ".fs",
}
