"""Reused worktrees (issue 17): leases, resets that touch only what differs, reclaiming a dead
holder's lease, the pool's bounds, isolation on reuse, and `route-agent state [prune]`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from route_agent.cli.main import main as cli_main
from route_agent.workspace.git import open_repo
from route_agent.workspace.patches import apply_patch_in_worktree, worktree_diff
from route_agent.workspace.pool import PoolSettings, is_leased, lease_worktree, pool_slots, prune_pool
from support.repos import FIX_REPLY, fingerprint, git, held_worktrees, make_sync_repo, pool_worktrees


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(path))
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_sync_repo(tmp_path / "repo")  # README.md modified, not staged
    (root / "build").mkdir()
    (root / ".gitignore").write_text(".route-agent/junit.xml\n__pycache__/\nbuild/\n")
    (root / "build" / "ignored.txt").write_text("the user's ignored file\n")
    (root / "notes.txt").write_text("untracked notes\n")
    return root


def dirty_the_worktree(path: Path) -> None:
    """What an attempt and its checks leave behind: a patch, new files, ignored output, a nested repo."""
    (path / "app" / "sync.py").write_text("broken by the last attempt\n")
    (path / "leftover.txt").write_text("from the last attempt\n")
    (path / "__pycache__").mkdir(exist_ok=True)
    (path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (path / "nested").mkdir()
    subprocess.run(["git", "init", "-q", str(path / "nested")], check=True)


def test_a_second_lease_reuses_the_worktree_and_resets_only_what_differs(repo: Path) -> None:
    r = open_repo(repo)
    first = lease_worktree(r)
    wt = first.prepare()
    assert first.cold_seconds is not None and first.cold_seconds > 0
    assert (wt.path / "README.md").read_text() == (repo / "README.md").read_text()
    assert (wt.path / "notes.txt").read_text() == "untracked notes\n"
    assert not (wt.path / "build").exists(), "an ignored file of the user's was copied"
    untouched = (wt.path / "tests" / "test_sync.py").stat().st_ino
    dirty_the_worktree(wt.path)
    first.release()

    (repo / "app" / "__init__.py").write_text("VERSION = 2\n")  # the user keeps working
    (repo / "notes.txt").unlink()
    (repo / "todo.txt").write_text("new untracked\n")
    second = lease_worktree(r)
    again = second.prepare()
    assert again.path == wt.path and second.cold_seconds is None
    assert not (again.path / "leftover.txt").exists() and not (again.path / "__pycache__").exists()
    assert not (again.path / "nested").exists() and not (again.path / "notes.txt").exists()
    assert (again.path / "app" / "sync.py").read_text() == (repo / "app" / "sync.py").read_text()
    assert (again.path / "app" / "__init__.py").read_text() == "VERSION = 2\n"
    assert (again.path / "todo.txt").read_text() == "new untracked\n"
    assert (again.path / "tests" / "test_sync.py").stat().st_ino == untouched, "an unchanged file was rewritten"
    # the snapshot commit holds the user's state, so the model's patch is the only difference
    assert git(again.path, "status", "--porcelain") == ""
    assert git(again.path, "rev-parse", "HEAD^").strip() == r.head
    second.release()
    assert held_worktrees(repo.parent / "state") == []


def test_the_users_tree_index_and_refs_are_never_written(repo: Path) -> None:
    git(repo, "add", "README.md")  # something staged as well
    before = fingerprint(repo)
    refs = git(repo, "for-each-ref")
    r = open_repo(repo)
    for _ in range(2):
        lease = lease_worktree(r)
        wt = lease.prepare({"app/sync.py": "unsaved buffer text\n"})
        assert (wt.path / "app" / "sync.py").read_text() == "unsaved buffer text\n"
        dirty_the_worktree(wt.path)
        lease.release()
    lease = lease_worktree(r)
    wt = lease.prepare()
    assert "+        pool.release()" in apply_patch_in_worktree(wt, FIX_REPLY)
    lease.release()
    assert fingerprint(repo) == before
    assert git(repo, "for-each-ref") == refs
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"


def test_a_git_file_rewritten_by_a_check_is_not_followed(repo: Path, tmp_path: Path) -> None:
    r = open_repo(repo)
    lease = lease_worktree(r)
    wt = lease.prepare()
    before = fingerprint(repo)
    (wt.path / ".git").write_text(f"gitdir: {repo / '.git'}\n")  # a check points the worktree at the user's repository
    lease.release()
    lease = lease_worktree(r)
    again = lease.prepare()
    lease.release()
    assert again.path == wt.path
    assert fingerprint(repo) == before, "resetting the worktree wrote the user's tree or index"
    assert (wt.path / ".git").read_text().startswith("gitdir: ") and str(repo / ".git" / "worktrees") in (wt.path / ".git").read_text()


def test_filter_drivers_hooks_and_fsmonitor_never_run(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {marker}\ncat\n")
    script.chmod(0o755)
    git(repo, "config", "filter.evil.smudge", str(script))
    git(repo, "config", "filter.evil.clean", str(script))
    git(repo, "config", "core.fsmonitor", str(script))
    (repo / ".git" / "hooks" / "post-checkout").write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    (repo / ".git" / "hooks" / "post-checkout").chmod(0o755)
    (repo / ".gitattributes").write_text("*.py filter=evil\n")
    r = open_repo(repo)
    for _ in range(2):  # the cold checkout, then a reset
        lease = lease_worktree(r)
        wt = lease.prepare()
        (wt.path / "app" / "sync.py").write_text("changed\n")
        lease.release()
    assert not marker.exists(), "a filter driver, hook or fsmonitor of the repository ran"


LEASE_AND_DIE = """
import os, signal, sys
from pathlib import Path
from route_agent.workspace.git import open_repo
from route_agent.workspace.pool import lease_worktree
lease = lease_worktree(open_repo(Path(sys.argv[1])))
wt = lease.prepare()
(wt.path / "secret-of-the-killed-run.txt").write_text("x")
print(wt.path, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_lease_of_a_killed_process_is_reclaimed_and_reset(repo: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", LEASE_AND_DIE, str(repo)], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    killed_path = Path(proc.stdout.strip())
    assert not is_leased(killed_path.with_name(killed_path.name + ".lock")), "the lock outlived its process"
    lease = lease_worktree(open_repo(repo))
    wt = lease.prepare()
    assert wt.path == killed_path and lease.cold_seconds is None
    assert not (wt.path / "secret-of-the-killed-run.txt").exists()
    lease.release()


def test_a_full_pool_gives_a_one_off_worktree_removed_at_release(repo: Path) -> None:
    r = open_repo(repo)
    settings = PoolSettings(pool_size=1)
    held = lease_worktree(r, settings)
    held.prepare()
    extra = lease_worktree(r, settings)
    assert extra.overflow and extra.path != held.path
    wt = extra.prepare()
    assert (wt.path / "notes.txt").exists()
    assert sorted(held_worktrees(repo.parent / "state")) == sorted([held.path, extra.path])
    extra.release()
    assert not extra.path.exists()
    assert str(extra.path) not in git(repo, "worktree", "list")
    held.release()
    assert held.path.exists() and held_worktrees(repo.parent / "state") == []


def test_prune_removes_idle_surplus_and_half_made_slots_but_never_a_leased_one(repo: Path) -> None:
    r = open_repo(repo)
    a, b, c = (lease_worktree(r, PoolSettings(pool_size=3)) for _ in range(3))
    for lease in (a, b, c):
        lease.prepare()
    meta = json.loads(a.meta_path.read_text())
    meta["last_used"] = time.time() - 8 * 86400
    a.meta_path.write_text(json.dumps(meta))  # idle for 8 days
    a.release()
    meta = json.loads(b.meta_path.read_text())
    meta["ready"] = False
    b.meta_path.write_text(json.dumps(meta))  # a checkout that never finished
    b.release()
    # c is still leased; slot-3 lies beyond a pool of 2 but is held, so it stays
    removed = prune_pool(r, PoolSettings(pool_size=2, idle_days=7))
    assert sorted(removed) == sorted([a.path, b.path])
    assert [s.path for s in pool_slots()] == [c.path]
    c.release()
    assert prune_pool(r, PoolSettings(pool_size=2)) == [c.path]  # now free, and beyond the pool's size
    assert "slot-" not in git(repo, "worktree", "list")


def test_state_shows_the_pool_and_prune_frees_it_but_keeps_the_ledger(repo: Path, state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = open_repo(repo)
    idle, busy = lease_worktree(r), lease_worktree(r)
    idle.prepare()
    busy.prepare()
    idle.release()
    (state / "ledger.sqlite3").write_bytes(b"x" * 10_000)
    with pytest.raises(SystemExit) as done:
        cli_main(["state", "--json"])
    assert done.value.code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["parts"]["worktrees"]["count"] == 2 and shown["parts"]["worktrees"]["bytes"] > 0
    assert shown["parts"]["ledger"]["bytes"] >= 10_000 and shown["total_bytes"] >= shown["parts"]["worktrees"]["bytes"]
    with pytest.raises(SystemExit) as done:
        cli_main(["state", "prune", "--json"])
    assert done.value.code == 0
    pruned = json.loads(capsys.readouterr().out)
    assert pruned["worktrees_removed"] == [str(idle.path)] and pruned["worktrees_in_use"] == 1
    assert pruned["freed_bytes"] > 0
    assert pool_worktrees(state) == [busy.path] and (state / "ledger.sqlite3").exists()
    busy.release()


def test_a_patch_is_staged_and_compared_by_name_with_the_same_diff_as_a_whole_tree_walk(repo: Path) -> None:
    lease = lease_worktree(open_repo(repo))
    wt = lease.prepare()
    by_name = apply_patch_in_worktree(wt, FIX_REPLY)
    assert by_name == worktree_diff(wt.path)  # the full walk stages nothing more
    lease.release()


def visible_files(root: Path) -> dict[str, bytes]:
    """Every file and link under root except .git and the ignored build/ directory."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in (".git", "build") or (path.is_dir() and not path.is_symlink()):
            continue
        out[rel] = ("link:" + os.readlink(path)).encode() if path.is_symlink() else path.read_bytes()
    return out


@pytest.mark.parametrize("by_name", [pytest.param(True, id="paths-by-name"), pytest.param(False, id="whole-checkout")])
def test_a_reset_undoes_every_kind_of_leftover_and_follows_a_new_commit(repo: Path, by_name: bool,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if not by_name:
        monkeypatch.setattr("route_agent.workspace.pool.MAX_PATHS_BY_NAME", 0)
    r = open_repo(repo)
    lease = lease_worktree(r)
    wt = lease.prepare()
    (wt.path / "tests" / "test_sync.py").unlink()  # a tracked file deleted
    (wt.path / "app" / "__init__.py").unlink()
    (wt.path / "app" / "__init__.py").mkdir()  # a tracked file turned into a directory
    (wt.path / "app" / "__init__.py" / "x").write_text("x")
    (wt.path / "staged.txt").write_text("staged by an agent\n")
    git(wt.path, "add", "staged.txt")  # a new file in the worktree's index
    (wt.path / "tests" / "link").symlink_to("/etc")  # an untracked link
    lease.release()

    (repo / "app" / "sync.py").write_text((repo / "app" / "sync.py").read_text() + "# committed\n")
    (repo / "new_module.py").write_text("VALUE = 1\n")
    git(repo, "add", "app/sync.py", "new_module.py")
    git(repo, "commit", "-qm", "the user commits")  # HEAD moves between runs
    (repo / "tests" / "test_sync.py").write_text("# the user's uncommitted edit\n")
    lease = lease_worktree(r)
    again = lease.prepare()
    assert again.path == wt.path and lease.cold_seconds is None
    assert visible_files(again.path) == visible_files(repo)
    assert git(again.path, "status", "--porcelain", "--ignored") == ""
    assert git(again.path, "rev-parse", "HEAD^").strip() == git(repo, "rev-parse", "HEAD").strip()
    assert (Path("/etc").exists() and not (again.path / "tests" / "link").exists())
    lease.release()


def test_no_copy_of_the_users_uncommitted_files_rests_in_the_state_directory(repo: Path, state: Path) -> None:
    (repo / ".env").write_text("PASSWORD=bait-8d1f\n")  # untracked, not ignored: copied for the checks
    (repo / "app" / "sync.py").write_text((repo / "app" / "sync.py").read_text() + "TOKEN = 'bait-8d1f'\n")
    r = open_repo(repo)
    lease = lease_worktree(r)
    wt = lease.prepare({"app/extra.py": "UNSAVED = 'bait-8d1f'\n"})
    assert (wt.path / ".env").read_text() == "PASSWORD=bait-8d1f\n"
    lease.note_written(["tests/test_sync.py"])
    (wt.path / "tests" / "test_sync.py").write_text("# patched: bait-8d1f\n")
    lease.release()
    stored = [p for p in state.rglob("*") if p.is_file() and not p.is_symlink() and b"bait-8d1f" in p.read_bytes()]
    assert stored == []
    lease = lease_worktree(r)
    again = lease.prepare()
    assert (again.path / ".env").exists() and "TOKEN" in (again.path / "app" / "sync.py").read_text()
    assert not (again.path / "app" / "extra.py").exists()
    assert (again.path / "tests" / "test_sync.py").read_text() == (repo / "tests" / "test_sync.py").read_text()
    lease.release()


def test_a_changed_file_that_cannot_be_copied_is_restored_from_head_not_left_from_the_last_attempt(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The reset leaves the user's changed files to the snapshot's copy; a file that vanishes between
    # the user's status and the copy must still come back as HEAD has it, file and index entry.
    r = open_repo(repo)
    lease = lease_worktree(r)
    wt = lease.prepare()
    (wt.path / "README.md").write_text("written by the last attempt\n")
    git(wt.path, "add", "README.md")
    lease.release()

    import route_agent.workspace.worktree as worktree_module

    copy = worktree_module._copy_user_files
    monkeypatch.setattr(worktree_module, "_copy_user_files",
                        lambda repo_, dest, paths: copy(repo_, dest, [p for p in paths if p != "README.md"]))
    lease = lease_worktree(r)
    again = lease.prepare()
    assert again.path == wt.path and lease.cold_seconds is None
    assert (again.path / "README.md").read_bytes() == git(repo, "show", "HEAD:README.md").encode()
    assert git(again.path, "status", "--porcelain", "--ignored") == ""
    assert "README.md" not in git(again.path, "diff", "--name-only", r.head, "HEAD")
    lease.release()


def test_the_pool_worktrees_index_is_split_and_keeps_one_shared_index(repo: Path) -> None:
    r = open_repo(repo)
    for round_ in range(3):
        lease = lease_worktree(r)
        wt = lease.prepare()
        (wt.path / "app" / "sync.py").write_text(f"round {round_}\n")
        lease.note_written(["app/sync.py"])
        lease.release()
    admin = Path(git(wt.path, "rev-parse", "--absolute-git-dir").strip())
    assert len(list(admin.glob("sharedindex.*"))) == 1
    assert git(wt.path, "ls-files", "--stage", "app/sync.py").split()[1] == git(repo, "rev-parse", "HEAD:app/sync.py").strip()


def run_worktree_for(r: object, buffers: dict[str, str] | None = None, listing: object = None) -> object:
    from types import SimpleNamespace

    from route_agent.pipeline.adapters import RunWorktree

    policy = SimpleNamespace(worktrees=SimpleNamespace(pool_size=2, idle_days=7.0), verification=SimpleNamespace(dependency_dirs=[]))
    return RunWorktree(SimpleNamespace(repo=r, buffers=buffers or {}, policy=policy, listing=listing))  # type: ignore[arg-type]


def git_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, list[str]]]:
    """Every git command the pool and the snapshot run from now on: (directory, arguments)."""
    from route_agent.workspace import pool, worktree
    from route_agent.workspace.git import run_git as real

    calls: list[tuple[Path, list[str]]] = []

    def recording(cwd: Path, args: list[str], **kwargs: object) -> object:
        calls.append((Path(cwd), list(args)))
        return real(cwd, args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pool, "run_git", recording)
    monkeypatch.setattr(worktree, "run_git", recording)
    return calls


def test_the_first_reset_copies_what_the_change_sets_status_listed_without_a_status_of_its_own(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from route_agent.workspace.git import collect_changes

    r = open_repo(repo)
    made = run_worktree_for(r)
    made.prepare()  # type: ignore[attr-defined]  # the pool's slot is made
    made.release()  # type: ignore[attr-defined]
    (repo / "app" / "__init__.py").write_text("VERSION = 4\n")
    (repo / "todo.txt").write_text("listed untracked\n")
    _, listing = collect_changes(r)
    assert "app/__init__.py" in listing.tracked and "todo.txt" in listing.untracked
    calls = git_calls(monkeypatch)
    fresh = run_worktree_for(r, listing=listing)
    wt, _ = fresh.prepare()  # type: ignore[attr-defined]
    assert [args for cwd, args in calls if cwd == repo and args[0] == "status"] == [], "the user's tree was walked again"
    assert (wt.path / "app" / "__init__.py").read_text() == "VERSION = 4\n"
    assert (wt.path / "todo.txt").read_text() == "listed untracked\n"
    assert git(wt.path, "status", "--porcelain") == ""
    # An escalation's reset follows the first attempt's checks: it asks git again, and sees a later edit.
    (repo / "app" / "sync.py").write_text("edited during the first attempt\n")
    again, _ = fresh.prepare()  # type: ignore[attr-defined]
    assert [args[0] for cwd, args in calls if cwd == repo].count("status") == 1
    assert (again.path / "app" / "sync.py").read_text() == "edited during the first attempt\n"
    fresh.release()  # type: ignore[attr-defined]


def test_a_stale_listing_is_not_trusted(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An editor's run that waited (an approval) lists the user's changes again: a file first changed
    after the listing is in the worktree."""
    import dataclasses

    from route_agent.pipeline.adapters import LISTING_FRESH_S
    from route_agent.workspace.git import collect_changes

    r = open_repo(repo)
    made = run_worktree_for(r)
    made.prepare()  # type: ignore[attr-defined]
    made.release()  # type: ignore[attr-defined]
    _, listing = collect_changes(r)
    (repo / "app" / "__init__.py").write_text("VERSION = 5\n")  # changed after the listing
    stale = dataclasses.replace(listing, taken=time.monotonic() - LISTING_FRESH_S - 1)
    calls = git_calls(monkeypatch)
    late = run_worktree_for(r, listing=stale)
    wt, _ = late.prepare()  # type: ignore[attr-defined]
    assert [args[0] for cwd, args in calls if cwd == repo].count("status") == 1
    assert (wt.path / "app" / "__init__.py").read_text() == "VERSION = 5\n"
    late.release()  # type: ignore[attr-defined]


def test_a_reset_from_the_last_snapshot_of_the_same_head_needs_no_diff_tree_and_is_exact(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = open_repo(repo)
    first = lease_worktree(r)
    wt = first.prepare()
    dirty_the_worktree(wt.path)
    first.release()
    (repo / "README.md").write_text(git(repo, "show", "HEAD:README.md"))  # the user undoes their change
    calls = git_calls(monkeypatch)
    second = lease_worktree(r)
    again = second.prepare()
    assert [args for _, args in calls if args[0] == "diff-tree"] == []
    assert (again.path / "README.md").read_text() == git(repo, "show", "HEAD:README.md")
    assert (again.path / "app" / "sync.py").read_text() == (repo / "app" / "sync.py").read_text()
    assert git(again.path, "status", "--porcelain") == ""
    assert git(again.path, "diff", "--name-only", "HEAD", r.head).split() == [".gitignore", "notes.txt"]  # the untracked copies
    second.release()
    # The user commits: the record names another parent, so git says which paths differ.
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the user's commit")
    third = lease_worktree(open_repo(repo))
    moved = third.prepare()
    assert [args[0] for _, args in calls].count("diff-tree") == 1
    assert git(moved.path, "status", "--porcelain") == ""
    assert git(moved.path, "rev-parse", "HEAD").strip() == git(repo, "rev-parse", "HEAD").strip()
    third.release()


def test_an_early_reset_is_what_prepare_returns_and_a_cold_pool_is_not_checked_out_early(repo: Path, state: Path) -> None:
    r = open_repo(repo)
    cold = run_worktree_for(r)
    cold.start_prepare()  # type: ignore[attr-defined]
    wt, cold_seconds = cold.prepare()  # type: ignore[attr-defined]
    assert cold_seconds is not None, "a first checkout was made before a reply asked for it"
    cold.release()  # type: ignore[attr-defined]

    (repo / "app" / "__init__.py").write_text("VERSION = 3\n")
    warm = run_worktree_for(r)
    warm.start_prepare()  # type: ignore[attr-defined]
    warm.start_prepare()  # type: ignore[attr-defined]  # a second call while one runs starts nothing more
    again, again_cold = warm.prepare()  # type: ignore[attr-defined]
    assert again.path == wt.path and again_cold is None
    assert (again.path / "app" / "__init__.py").read_text() == "VERSION = 3\n"
    assert git(again.path, "status", "--porcelain") == ""
    warm.release()  # type: ignore[attr-defined]
    assert held_worktrees(state) == []


def test_a_run_that_ends_before_taking_its_early_reset_leaves_no_copy_of_the_users_files(repo: Path, state: Path) -> None:
    r = open_repo(repo)
    first = run_worktree_for(r)
    first.prepare()  # type: ignore[attr-defined]  # the pool's slot is made
    first.release()  # type: ignore[attr-defined]
    (repo / ".env").write_text("PASSWORD=bait-51c2\n")
    ended = run_worktree_for(r)
    ended.start_prepare()  # type: ignore[attr-defined]
    ended.release()  # type: ignore[attr-defined]  # e.g. the lane failed: no attempt took the reset
    stored = [p for p in state.rglob("*") if p.is_file() and not p.is_symlink() and b"bait-51c2" in p.read_bytes()]
    assert stored == [] and held_worktrees(state) == []


def test_pruning_at_a_runs_start_is_housekeeping_and_never_ends_the_run(
        repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Stale worktrees are pruned while the run starts, beside its lease: a failure there is logged."""
    from route_agent.pipeline import adapters

    def broken(*_: object) -> list[Path]:
        raise PermissionError(13, "Permission denied", "worktrees/dead-one")

    monkeypatch.setattr(adapters, "prune_stale_worktrees", broken)
    req = run_worktree_for(open_repo(repo)).req  # type: ignore[attr-defined]
    with caplog.at_level("WARNING"):
        adapters.prune_worktrees(req)
    assert "stale worktrees were not pruned" in caplog.text and "Permission denied" in caplog.text
