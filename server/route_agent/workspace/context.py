"""Which repository files a lane should see besides the change set.

A lane gets one prompt, not a shell: if the code the brief is about is not in the change set, the
model has to be shown it. Candidates are tracked files whose name or directory matches a word of the
brief (`sync worker` finds `app/sync.py` and `tests/test_sync.py`), files that verification findings
point at, and the tests that go with a chosen source file. Ranked by how many brief words a path
matches, source before tests, then by shortness; capped, because the prompt budget is the lane's context.
Only a path that contains a brief word can score: one `git ls-files` lists the index once and a
substring search of the listing picks those paths out, so a run does not split every tracked path
into words (nor has git match a `:(icase)*word*` pathspec against every path, twice).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from route_agent.workspace.git import Repo, run_git

MAX_CONTEXT_FILES = 8
_WORD = re.compile(r"[a-z][a-z0-9]{2,}")
_STOP = {
    "the", "and", "for", "with", "that", "this", "from", "into", "when", "fix", "fixes", "add", "bug", "issue", "make",
    "use", "not", "are", "should", "does", "can", "cannot", "test", "tests", "code", "file", "files", "error", "errors",
    "new", "why", "how", "what", "there", "their", "about", "after", "before", "again", "also", "but", "have", "has",
    "was", "were", "will", "would", "could", "its", "all", "any", "one", "two", "more", "less", "than", "then",
}


def brief_words(brief: str) -> set[str]:
    return {w for w in _WORD.findall(brief.casefold()) if w not in _STOP}


def _path_words(path: str) -> set[str]:
    words: set[str] = set()
    for part in PurePosixPath(path.casefold()).parts:
        stem = part.rsplit(".", 1)[0]
        words.update(w for w in re.split(r"[^a-z0-9]+", stem) if len(w) >= 3)
        words.add(stem)
    return words


def _is_test(path: str) -> bool:
    stem = PurePosixPath(path).stem
    return stem.startswith("test_") or stem.endswith("_test") or "tests" in PurePosixPath(path).parts


def rank_paths(tracked: Iterable[str], words: set[str], exclude: set[str], limit: int = MAX_CONTEXT_FILES) -> list[str]:
    scored: list[tuple[int, bool, int, str]] = []
    for path in tracked:
        if path in exclude:
            continue
        hits = len(words & _path_words(path))
        if hits:
            scored.append((-hits, _is_test(path), len(path), path))
    scored.sort()
    chosen = [p for *_, p in scored[:limit]]
    # The tests that go with a chosen source file, and the source that goes with a chosen test.
    names = {PurePosixPath(p).stem.removeprefix("test_").removesuffix("_test") for p in chosen}
    for path in tracked:
        if len(chosen) >= limit:
            break
        stem = PurePosixPath(path).stem
        if path not in chosen and path not in exclude and (stem.removeprefix("test_") in names or stem.removesuffix("_test") in names):
            chosen.append(path)
    return chosen[:limit]


class TrackedListing:
    """The index's listing of tracked paths (`git ls-files`), read once per run: an escalation's
    prompt ranks from the same listing instead of reading a 34k-entry index again while its
    worktree is reset. (It changes only when the user stages or commits, and it only picks context.)"""

    def __init__(self, repo: Repo) -> None:
        self._repo = repo
        self._listing: bytes | None = None
        self._found: dict[frozenset[str], list[str]] = {}

    def read(self) -> bytes:
        if self._listing is None:
            self._listing = run_git(self._repo.root, ["ls-files", "-z", "--cached"]).stdout
        return self._listing

    def containing(self, fragments: Iterable[str]) -> list[str]:
        """The tracked paths that contain any of `fragments` (see `_tracked_containing`), found once
        per set of fragments: every attempt of a run asks for the brief's words."""
        key = frozenset(fragments)
        if key not in self._found:
            self._found[key] = _tracked_containing(self.read(), key)
        return self._found[key]


def context_paths(repo: Repo, brief: str, changed: Iterable[str], finding_paths: Iterable[str] = (),
                  tracked: TrackedListing | None = None) -> list[str]:
    """Extra paths for the prompt: files the findings name first, then files the brief's words match
    (in `tracked`, the run's listing, when given)."""
    exclude = set(changed)
    first = [p for p in dict.fromkeys(finding_paths) if p and p not in exclude]
    words = brief_words(brief)
    if not words:
        return first[:MAX_CONTEXT_FILES]
    limit = MAX_CONTEXT_FILES - len(first)
    # Only paths that contain a brief word can score, and only paths that contain a chosen file's
    # name can go with it: both are picked out of the index's listing without splitting every path.
    tracked = tracked or TrackedListing(repo)
    candidates = tracked.containing(words)
    chosen = rank_paths(candidates, words, exclude | set(first), limit)
    names = {PurePosixPath(p).stem.removeprefix("test_").removesuffix("_test") for p in chosen}
    companions = tracked.containing(names - words)
    if companions:
        chosen = rank_paths(sorted(set(candidates) | set(companions)), words, exclude | set(first), limit)
    return (first + chosen)[:MAX_CONTEXT_FILES]


_PLAIN = re.compile(r"^[A-Za-z0-9_.-]+$")


def _tracked_containing(listing: bytes, fragments: Iterable[str]) -> list[str]:
    """The paths of a NUL-separated `listing` that contain any of `fragments`, ignoring ASCII case
    (as git's `:(icase)` does), in the listing's order: each fragment is searched for in the whole
    listing at once and the path around each hit is taken."""
    plain = sorted(f for f in fragments if f and _PLAIN.match(f))
    if not plain:
        return []
    folded = listing.lower()  # bytes: ASCII letters only, so offsets stay those of `listing`
    spans: dict[int, int] = {}
    for fragment in plain:
        needle = fragment.lower().encode("ascii")
        pos = 0
        while (hit := folded.find(needle, pos)) >= 0:
            start = folded.rfind(b"\0", 0, hit) + 1
            end = folded.find(b"\0", hit)
            end = len(folded) if end < 0 else end
            spans[start] = end
            pos = end + 1
    return [listing[start:spans[start]].decode("utf-8", "surrogateescape") for start in sorted(spans)]
