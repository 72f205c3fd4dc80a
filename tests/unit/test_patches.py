"""Patches: extraction, path validation, worktree apply, stored runs and `route-agent apply`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from route_agent.cli.main import main as cli_main
from route_agent.workspace.git import open_repo
from route_agent.workspace.patches import PatchRejected, extract_patch
from route_agent.workspace.worktree import (
    apply_patch_in_worktree,
    apply_to_user_tree,
    create_worktree,
    prune_stale_worktrees,
    remove_worktree,
    save_run,
    stage_run,
)
from support.repos import git


def fenced(diff: str) -> str:
    return f"Here you go.\n\n```diff\n{diff}```\n"


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(path))
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "hello.txt").write_text("hello\n")
    (root / "lib.py").write_text("".join(f"line{n}\n" for n in range(1, 21)))
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    # the user's uncommitted state: a staged edit, an unstaged edit and an untracked file
    (root / "lib.py").write_text("".join(f"line{n}\n" for n in range(1, 21)).replace("line2\n", "line2 staged\n"))
    git(root, "add", "lib.py")
    (root / "hello.txt").write_text("hello\nunstaged\n")
    (root / "notes.md").write_text("untracked notes\n")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Hashes of every file of the user's tree and of the index."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and (not rel.startswith(".git/") or rel == ".git/index"):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


HELLO_DIFF = "--- a/hello.txt\n+++ b/hello.txt\n@@ -1,2 +1,2 @@\n-hello\n+hello, world\n unstaged\n"


def test_extract_fenced_diff_search_replace_and_bare() -> None:
    patch = extract_patch(fenced(HELLO_DIFF))
    assert patch.kind == "diff" and patch.paths == ("hello.txt",)
    sr = extract_patch("hello.txt\n<<<<<<< SEARCH\nhello\n=======\nhi\n>>>>>>> REPLACE\n")
    assert sr.kind == "search_replace" and sr.blocks[0].path == "hello.txt" and sr.blocks[0].replace == "hi"
    assert extract_patch(HELLO_DIFF).paths == ("hello.txt",)
    with pytest.raises(PatchRejected, match="no ```diff block"):
        extract_patch("I could not find the bug.")


def test_fence_inside_markdown_context_does_not_end_the_block() -> None:
    diff = "--- a/README.md\n+++ b/README.md\n@@ -1,3 +1,3 @@\n ```\n-old\n+new\n ```\n"
    assert extract_patch(fenced(diff)).diff == diff


def test_worktree_apply_leaves_user_tree_and_index_byte_identical(repo: Path, state: Path) -> None:
    before = snapshot(repo)
    r = open_repo(repo)
    wt = create_worktree(r)
    assert wt.path.is_relative_to(state / "worktrees")
    # the worktree holds the user's staged, unstaged and untracked state
    assert (wt.path / "hello.txt").read_text() == "hello\nunstaged\n"
    assert "line2 staged" in (wt.path / "lib.py").read_text()
    assert (wt.path / "notes.md").read_text() == "untracked notes\n"
    diff = apply_patch_in_worktree(wt, fenced(HELLO_DIFF))
    assert "+hello, world" in diff and "notes.md" not in diff
    assert (wt.path / "hello.txt").read_text() == "hello, world\nunstaged\n"
    remove_worktree(r, wt)
    assert not wt.path.exists()
    assert snapshot(repo) == before


@pytest.mark.parametrize(("diff", "words"), [
    pytest.param("--- a/../outside\n+++ b/../outside\n@@ -0,0 +1 @@\n+pwned\n", "climbs out", id="dotdot"),
    pytest.param("--- /dev/null\n+++ b/.git/hooks/x\n@@ -0,0 +1 @@\n+#!/bin/sh\n", ".git", id="git-hooks"),
    pytest.param("--- /dev/null\n+++ /etc/passwd\n@@ -0,0 +1 @@\n+x\n", "absolute", id="absolute"),
    pytest.param("diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc\n", "symlink",
                 id="symlink-mode"),
    pytest.param("--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-nope\n+x\n", "does not apply", id="bad-context"),
])
def test_rejected_patches_write_nothing(repo: Path, diff: str, words: str) -> None:
    r = open_repo(repo)
    wt = create_worktree(r)
    inside = snapshot(wt.path)
    hooks = sorted(p.name for p in (repo / ".git" / "hooks").iterdir()) if (repo / ".git" / "hooks").exists() else []
    with pytest.raises(PatchRejected, match=words):
        apply_patch_in_worktree(wt, fenced(diff))
    assert snapshot(wt.path) == inside
    assert not (wt.path.parent / "outside").exists() and not (repo.parent / "outside").exists()
    assert not (repo / ".git" / "hooks" / "x").exists()
    assert sorted(p.name for p in (repo / ".git" / "hooks").iterdir()) == hooks
    remove_worktree(r, wt)


def test_write_through_symlink_rejected(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (repo / "linkdir").symlink_to(outside)  # untracked symlink: copied into the worktree as a link
    r = open_repo(repo)
    wt = create_worktree(r)
    assert (wt.path / "linkdir").is_symlink()
    for reply in (fenced("--- /dev/null\n+++ b/linkdir/evil.txt\n@@ -0,0 +1 @@\n+evil\n"),
                  "linkdir/evil.txt\n<<<<<<< SEARCH\n=======\nevil\n>>>>>>> REPLACE\n"):
        with pytest.raises(PatchRejected, match="symlink"):
            apply_patch_in_worktree(wt, reply)
    assert list(outside.iterdir()) == []
    remove_worktree(r, wt)


def test_search_replace_all_or_nothing(repo: Path) -> None:
    r = open_repo(repo)
    wt = create_worktree(r)
    reply = ("hello.txt\n<<<<<<< SEARCH\nhello\n=======\nhi\n>>>>>>> REPLACE\n\n"
             "lib.py\n<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE\n")
    with pytest.raises(PatchRejected, match="not found"):
        apply_patch_in_worktree(wt, reply)
    assert (wt.path / "hello.txt").read_text() == "hello\nunstaged\n"
    diff = apply_patch_in_worktree(wt, "hello.txt\n<<<<<<< SEARCH\nunstaged\n=======\nstaged now\n>>>>>>> REPLACE\n")
    assert "+staged now" in diff
    remove_worktree(r, wt)


def _accepted_run(repo: Path, diff_reply: str, run_id: str = "run1") -> None:
    r = open_repo(repo)
    wt = create_worktree(r)
    diff = apply_patch_in_worktree(wt, diff_reply)
    remove_worktree(r, wt)
    save_run(r, run_id, diff, wt.base, {"lane": "fast"})


LIB_DIFF = "--- a/lib.py\n+++ b/lib.py\n@@ -18,3 +18,3 @@\n line18\n-line19\n+line19 patched\n line20\n"


def test_apply_to_user_tree_clean_merge_and_conflict(repo: Path, state: Path) -> None:
    _accepted_run(repo, fenced(LIB_DIFF))
    meta = json.loads((state / "runs" / "run1" / "meta.json").read_text())
    assert meta["paths"] == ["lib.py"] and (state / "runs" / "run1" / "patch.diff").is_file()
    index_before = (repo / ".git" / "index").read_bytes()
    # the user edits another part of the same file meanwhile: merged three ways
    (repo / "lib.py").write_text((repo / "lib.py").read_text().replace("line5\n", "line5 user\n"))
    result = apply_to_user_tree(open_repo(repo), "run1")
    assert result.applied and result.merged == ("lib.py",)
    text = (repo / "lib.py").read_text()
    assert "line5 user" in text and "line19 patched" in text and "line2 staged" in text
    assert (repo / ".git" / "index").read_bytes() == index_before


def test_apply_conflict_writes_nothing_and_cli_exit_codes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _accepted_run(repo, fenced(LIB_DIFF), "run2")
    (repo / "lib.py").write_text((repo / "lib.py").read_text().replace("line19\n", "line19 user\n"))
    before = snapshot(repo)
    with pytest.raises(SystemExit) as ended:
        cli_main(["apply", "run2", "--workspace", str(repo)])
    assert ended.value.code == 1
    assert "conflict: lib.py" in capsys.readouterr().err
    assert snapshot(repo) == before
    with pytest.raises(SystemExit) as ended:
        cli_main(["apply", "no-such-run", "--workspace", str(repo)])
    assert ended.value.code == 2
    (repo / "lib.py").write_text((repo / "lib.py").read_text().replace("line19 user\n", "line19\n"))
    with pytest.raises(SystemExit) as ended:
        cli_main(["apply", "run2", "--workspace", str(repo)])
    assert ended.value.code == 0
    assert "line19 patched" in (repo / "lib.py").read_text()


def test_prune_removes_worktrees_of_dead_processes(repo: Path, state: Path) -> None:
    r = open_repo(repo)
    live = create_worktree(r)
    dead = create_worktree(r)
    owner = dead.path.with_name(dead.path.name + ".owner.json")
    info = json.loads(owner.read_text())
    info["pid"] = 2**22 + 12345  # above the default pid_max: no such process
    owner.write_text(json.dumps(info))
    removed = prune_stale_worktrees(r)
    assert removed == [dead.path]
    assert live.path.exists() and not dead.path.exists()
    assert str(dead.path) not in git(repo, "worktree", "list")
    remove_worktree(r, live)


def test_a_staged_run_is_no_run_until_kept_and_leaves_nothing_when_discarded(repo: Path, state: Path) -> None:
    """A run stages its patch's stored form while the checks run: a failed attempt's is discarded
    without a trace, an accepted one's becomes runs/<id> exactly as save_run writes it."""
    r = open_repo(repo)
    wt = create_worktree(r)
    diff = apply_patch_in_worktree(wt, fenced(LIB_DIFF))
    remove_worktree(r, wt)
    dropped = stage_run(r, "run5", diff, wt.base)
    assert dropped.folder.parent == state / "runs" and dropped.folder.name.startswith(".")
    assert not (state / "runs" / "run5").exists()
    dropped.discard()
    assert list((state / "runs").iterdir()) == []
    kept = stage_run(r, "run5", diff, wt.base).keep({"lane": "strong"})
    assert kept == state / "runs" / "run5" and [p.name for p in (state / "runs").iterdir()] == ["run5"]
    save_run(r, "run6", diff, wt.base, {"lane": "strong"})
    ours, theirs = (json.loads((state / "runs" / n / "meta.json").read_text()) for n in ("run5", "run6"))
    assert {k: v for k, v in ours.items() if k not in ("run_id", "saved")} == {k: v for k, v in theirs.items() if k not in ("run_id", "saved")}
    assert ours["lane"] == "strong" and ours["digest"]
    assert apply_to_user_tree(open_repo(repo), "run5").applied
