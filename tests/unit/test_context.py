"""Which files a lane sees besides the change set."""

from __future__ import annotations

from pathlib import Path

import pytest

from route_agent.workspace.context import _tracked_containing, brief_words, context_paths, rank_paths
from route_agent.workspace.git import open_repo
from support.repos import git, make_sync_repo

TRACKED = ["app/sync.py", "app/__init__.py", "app/billing/invoice.py", "tests/test_sync.py", "tests/test_invoice.py", "README.md", "docs/sync-design.md"]


@pytest.mark.parametrize(
    ("brief", "expected_first"),
    [
        pytest.param("fix retry leak in sync worker", "app/sync.py", id="word-matches-file"),
        pytest.param("invoice totals are off by one cent", "app/billing/invoice.py", id="word-matches-nested-file"),
    ],
)
def test_rank_paths_prefers_matching_files_and_adds_their_tests(brief: str, expected_first: str) -> None:
    ranked = rank_paths(TRACKED, brief_words(brief), exclude=set())
    assert ranked[0] == expected_first
    test_file = "tests/test_" + Path(expected_first).name
    assert test_file in ranked


def test_stop_words_and_short_words_match_nothing() -> None:
    assert rank_paths(TRACKED, brief_words("fix the bug in it"), exclude=set()) == []


def test_context_paths_in_a_real_repo_skip_the_change_set_and_put_findings_first(tmp_path: Path) -> None:
    repo = open_repo(make_sync_repo(tmp_path / "repo"))
    paths = context_paths(repo, "fix retry leak in sync worker", ["README.md"], ["tests/test_sync.py"])
    assert paths[0] == "tests/test_sync.py"
    assert "app/sync.py" in paths
    assert "README.md" not in paths


def test_context_paths_from_git_candidates_equal_ranking_every_tracked_path(tmp_path: Path) -> None:
    root = make_sync_repo(tmp_path / "repo")
    for rel in ("worker/queue.py", "tests/test_queue.py", "Docs/SYNC_Notes.md", "lib/resync_all.py", "app/retry_test.py",
                "app/retry.py", "vendor/leak-detector/x.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x\n")
    git(root, "add", ".")
    git(root, "commit", "-qm", "more")
    repo = open_repo(root)
    tracked = git(root, "ls-files").splitlines()
    for brief in ("fix retry leak in sync worker", "queue worker stalls", "SYNC notes are stale", "resync everything"):
        expected = rank_paths(tracked, brief_words(brief), exclude=set())
        assert context_paths(repo, brief, []) == expected, brief


@pytest.mark.parametrize(("fragments", "expected"), [
    pytest.param({"sync"}, ["app/Sync.py", "SYNC/sync_sync.md", "tests/test_resync"], id="case-and-each-path-once"),
    pytest.param({"queue", "docs"}, ["docs/queue.md", "worker/queue"], id="first-and-last-record"),
    pytest.param({"kelvin"}, [], id="ascii-case-only: the Kelvin sign is no k"),
    pytest.param({"a*b", ""}, [], id="not a plain fragment"),
])
def test_tracked_containing_picks_whole_paths_out_of_the_listing(fragments: set[str], expected: list[str]) -> None:
    listing = "\0".join(["docs/queue.md", "app/Sync.py", "SYNC/sync_sync.md", "\u212aelvin.py", "tests/test_resync", "worker/queue"])
    assert _tracked_containing(listing.encode(), fragments) == expected


def test_a_runs_attempts_rank_from_one_listing_of_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An escalation's prompt does not list a 34k-entry index again (TrackedListing, one per run),
    and ranks exactly as a fresh listing would, its own findings first."""
    from route_agent.workspace import context

    repo = open_repo(make_sync_repo(tmp_path / "repo"))
    fresh_first = context_paths(repo, "fix retry leak in sync worker", ["README.md"])
    fresh_second = context_paths(repo, "fix retry leak in sync worker", ["README.md"], ["tests/test_sync.py"])
    listings: list[list[str]] = []
    real = context.run_git

    def counting(root: Path, args: list[str], **kwargs: object) -> object:
        listings.append(list(args))
        return real(root, args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(context, "run_git", counting)
    tracked = context.TrackedListing(repo)
    first = context_paths(repo, "fix retry leak in sync worker", ["README.md"], tracked=tracked)
    second = context_paths(repo, "fix retry leak in sync worker", ["README.md"], ["tests/test_sync.py"], tracked=tracked)
    assert (first, second) == (fresh_first, fresh_second)
    assert listings == [["ls-files", "-z", "--cached"]]
