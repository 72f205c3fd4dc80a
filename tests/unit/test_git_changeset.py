"""The change set from a real git repository made with the git CLI, and the hardened git calls."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from route_agent.policy import PolicyCache
from route_agent.routing import Router
from route_agent.workspace.git import (
    WorkspaceError,
    collect_change_set,
    open_repo,
    read_head_blobs,
    run_git,
    unquote_git_path,
)
from support.repos import git

ROUTER = Router(PolicyCache().load().policy)





@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "app").mkdir()
    (root / "app" / "sync.py").write_text("def run():\n    return 1\n\n\ndef stop():\n    return 0\n")
    (root / "app" / "users.py").write_text("def check(user, password):\n    return check_password(user, password)\n\nX = 1\n")
    (root / "README.md").write_text("# Demo\n\nInstal the tool.\n")
    (root / "scripts").mkdir()
    (root / "scripts" / "deploy.sh").write_text("#!/bin/sh\necho deploy\n")
    (root / "old.py").write_text("gone = True\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def files_by_path(root: Path, buffers: dict[str, str] | None = None) -> dict[str, object]:
    return {f.path: f for f in collect_change_set(open_repo(root), buffers).files}


def test_clean_repository_has_an_empty_change_set(repo: Path) -> None:
    change_set = collect_change_set(open_repo(repo))
    assert change_set.files == ()
    assert change_set.base == git(repo, "rev-parse", "HEAD").strip()


def test_unstaged_staged_and_untracked(repo: Path) -> None:
    (repo / "app" / "sync.py").write_text("def run():\n    return 2\n\n\ndef stop():\n    return 0\n")
    (repo / "README.md").write_text("# Demo\n\nInstall the tool.\n")
    git(repo, "add", "README.md")
    (repo / "notes.py").write_text("A = 1\nB = 2\n")
    files = files_by_path(repo)
    assert set(files) == {"app/sync.py", "README.md", "notes.py"}
    sync = files["app/sync.py"]
    assert sync.status == "modified"  # type: ignore[attr-defined]
    assert sync.added == ((2, "    return 2"),)  # type: ignore[attr-defined]
    assert sync.removed == ((2, "    return 1"),)  # type: ignore[attr-defined]
    assert files["README.md"].added == ((3, "Install the tool."),)  # type: ignore[attr-defined]
    notes = files["notes.py"]
    assert notes.status == "untracked" and notes.added == ((1, "A = 1"), (2, "B = 2"))  # type: ignore[attr-defined]


def test_staged_and_further_unstaged_edits_are_both_seen(repo: Path) -> None:
    (repo / "app" / "sync.py").write_text("def run():\n    return 2\n\n\ndef stop():\n    return 0\n")
    git(repo, "add", "app/sync.py")
    (repo / "app" / "sync.py").write_text("def run():\n    return 2\n\n\ndef stop():\n    return 9\n")
    sync = files_by_path(repo)["app/sync.py"]
    assert [n for n, _ in sync.added] == [2, 6]  # type: ignore[attr-defined]


def test_untracked_directories_are_expanded(repo: Path) -> None:
    (repo / "migrations" / "deep").mkdir(parents=True)
    (repo / "migrations" / "0001_initial.py").write_text("x = 1\n")
    (repo / "migrations" / "deep" / "0002.py").write_text("y = 2\n")
    files = files_by_path(repo)
    assert {"migrations/0001_initial.py", "migrations/deep/0002.py"} <= set(files)


def test_untracked_files_over_the_limit_are_noted(repo: Path) -> None:
    (repo / "gen").mkdir()
    for i in range(5):
        (repo / "gen" / f"f{i}.txt").write_text("x\n")
    change_set = collect_change_set(open_repo(repo), max_untracked=3)
    assert len(change_set.files) == 3
    assert change_set.notes and "5 untracked files" in change_set.notes[0]


def test_ignored_files_are_not_in_the_change_set(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore")
    (repo / "debug.log").write_text("noise\n")
    assert files_by_path(repo) == {}


def test_deletion(repo: Path) -> None:
    (repo / "old.py").unlink()
    deleted = files_by_path(repo)["old.py"]
    assert deleted.status == "deleted"  # type: ignore[attr-defined]
    assert deleted.removed == ((1, "gone = True"),)  # type: ignore[attr-defined]
    decision = ROUTER.classify(collect_change_set(open_repo(repo)), "remove dead code")
    assert "deletions" in decision.signals.raised


def test_staged_rename_is_a_deletion_and_an_addition(repo: Path) -> None:
    git(repo, "mv", "app/users.py", "app/accounts.py")
    files = files_by_path(repo)
    assert files["app/users.py"].status == "deleted"  # type: ignore[attr-defined]
    assert files["app/accounts.py"].status == "added"  # type: ignore[attr-defined]


def test_exec_bit(repo: Path) -> None:
    (repo / "scripts" / "deploy.sh").chmod(0o755)
    changed = files_by_path(repo)["scripts/deploy.sh"]
    assert changed.exec_bit_changed  # type: ignore[attr-defined]
    decision = ROUTER.classify(collect_change_set(open_repo(repo)), "make it runnable")
    assert decision.signals.raised["file_mode_change"].evidence[0].path == "scripts/deploy.sh"


def test_new_symlink_untracked_and_staged(repo: Path) -> None:
    (repo / "link").symlink_to("/etc/passwd")
    assert files_by_path(repo)["link"].is_symlink  # type: ignore[attr-defined]
    git(repo, "add", "link")
    staged = files_by_path(repo)["link"]
    assert staged.is_symlink and staged.status == "added"  # type: ignore[attr-defined]
    decision = ROUTER.classify(collect_change_set(open_repo(repo)), "add a link")
    assert "file_mode_change" in decision.signals.raised


def test_file_replaced_by_symlink_is_a_typechange(repo: Path) -> None:
    (repo / "old.py").unlink()
    (repo / "old.py").symlink_to("app/sync.py")
    changed = files_by_path(repo)["old.py"]
    assert changed.status == "typechange" and changed.is_symlink  # type: ignore[attr-defined]


def test_submodule_pointer_change(repo: Path, tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "main")
    (sub / "a.txt").write_text("a\n")
    git(sub, "add", "a.txt")
    git(sub, "commit", "-q", "-m", "a")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "vendor/sub")
    git(repo, "commit", "-q", "-m", "submodule")
    (repo / "vendor" / "sub" / "a.txt").write_text("b\n")
    git(repo / "vendor" / "sub", "commit", "-q", "-am", "b")
    changed = files_by_path(repo)["vendor/sub"]
    assert changed.is_submodule  # type: ignore[attr-defined]
    decision = ROUTER.classify(collect_change_set(open_repo(repo)), "bump vendor")
    assert "file_mode_change" in decision.signals.raised


def test_binary_files(repo: Path) -> None:
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0" + bytes(range(256)))
    assert files_by_path(repo)["logo.png"].binary  # type: ignore[attr-defined]
    git(repo, "add", "logo.png")
    git(repo, "commit", "-q", "-m", "logo")
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\1" + bytes(range(256)))
    assert files_by_path(repo)["logo.png"].binary  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("docs/with space.py", id="space"),
        pytest.param("docs/naïve café.py", id="unicode"),
        pytest.param("docs/quote\"d.py", id="quote"),
        pytest.param("docs/データ.py", id="cjk"),
    ],
)
def test_unusual_file_names(repo: Path, name: str) -> None:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("A = 1\n")
    assert files_by_path(repo)[name].status == "untracked"  # type: ignore[attr-defined]
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", "add")
    path.write_text("A = 2\n")
    changed = files_by_path(repo)[name]
    assert changed.added == ((1, "A = 2"),)  # type: ignore[attr-defined]


def test_lookalike_path_from_git(repo: Path) -> None:
    fake = repo / ".github" / "workflоws" / "ci.yml"
    fake.parent.mkdir(parents=True)
    fake.write_text("on: push\n")
    decision = ROUTER.classify(collect_change_set(open_repo(repo)), "tidy")
    assert decision.lane == "strong"
    assert decision.signals.raised["lookalike_path"].evidence[0].path == ".github/workflоws/ci.yml"


def test_detectors_see_changed_lines_only(repo: Path) -> None:
    # users.py already calls check_password; an unrelated edit elsewhere in it is not auth code.
    (repo / "app" / "users.py").write_text("def check(user, password):\n    return check_password(user, password)\n\nX = 2\n")
    decision = ROUTER.classify(collect_change_set(open_repo(repo)), "bump X")
    assert not decision.signals.has_auth_code
    (repo / "app" / "users.py").write_text("def check(user, password):\n    return check_password(user, password) and 1\n\nX = 2\n")
    decision = ROUTER.classify(collect_change_set(open_repo(repo)), "bump X")
    assert decision.signals.has_auth_code
    assert decision.signals.raised["auth_code"].evidence[0].line == 2


class TestUnsavedBuffers:
    def test_buffer_overrides_disk(self, repo: Path) -> None:
        text = "def run():\n    return 1\n\n\ndef stop():\n    return jwt.decode(token, key)\n"
        changed = files_by_path(repo, {"app/sync.py": text})["app/sync.py"]
        assert changed.unsaved  # type: ignore[attr-defined]
        assert changed.added == ((6, "    return jwt.decode(token, key)"),)  # type: ignore[attr-defined]

    def test_buffer_equal_to_head_removes_a_disk_change(self, repo: Path) -> None:
        original = (repo / "app" / "sync.py").read_text()
        (repo / "app" / "sync.py").write_text(original.replace("return 1", "return 5"))
        assert "app/sync.py" in files_by_path(repo)
        assert "app/sync.py" not in files_by_path(repo, {"app/sync.py": original})

    def test_buffer_equal_to_disk_changes_nothing(self, repo: Path) -> None:
        (repo / "app" / "sync.py").write_text("def run():\n    return 3\n")
        on_disk = files_by_path(repo)["app/sync.py"]
        with_buffer = files_by_path(repo, {"app/sync.py": "def run():\n    return 3\n"})["app/sync.py"]
        assert with_buffer == on_disk

    def test_buffer_for_a_new_unsaved_file(self, repo: Path) -> None:
        changed = files_by_path(repo, {"app/new.py": "def fresh():\n    pass\n"})["app/new.py"]
        assert changed.status == "untracked" and changed.unsaved  # type: ignore[attr-defined]
        assert changed.added[0] == (1, "def fresh():")  # type: ignore[attr-defined]


def test_read_head_blobs(repo: Path) -> None:
    blobs = read_head_blobs(open_repo(repo), ["README.md", "missing.txt", "app/sync.py"])
    assert set(blobs) == {"README.md", "app/sync.py"}
    assert blobs["README.md"].startswith("# Demo")


class TestHardening:
    @pytest.fixture
    def booby_trapped(self, repo: Path, tmp_path: Path) -> tuple[Path, Path]:
        marker = tmp_path / "pwned"
        hook = tmp_path / "evil.sh"
        hook.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n")
        hook.chmod(0o755)
        git(repo, "config", "core.fsmonitor", str(hook))
        git(repo, "config", "diff.external", str(hook))
        git(repo, "config", "core.pager", str(hook))
        (repo / ".gitattributes").write_text("*.py diff=evil filter=evil\n")
        git(repo, "config", "diff.evil.textconv", str(hook))
        git(repo, "config", "filter.evil.clean", str(hook))
        git(repo, "config", "filter.evil.smudge", str(hook))
        git(repo, "config", "filter.evil.process", str(hook))
        git(repo, "config", "filter.evil.required", "true")
        hooks = repo / ".git" / "hooks"
        for name in ("post-index-change", "pre-commit", "post-checkout"):
            (hooks / name).write_text(f"#!/bin/sh\ntouch {marker}\n")
            (hooks / name).chmod(0o755)
        (repo / "app" / "sync.py").write_text("def run():\n    return 2\n")
        return repo, marker

    def test_repository_config_commands_are_never_run(self, booby_trapped: tuple[Path, Path]) -> None:
        repo, marker = booby_trapped
        files = files_by_path(repo, {"app/users.py": "changed = True\n"})
        assert "app/sync.py" in files
        assert files["app/sync.py"].added == ((2, "    return 2"),)  # type: ignore[attr-defined]
        assert not marker.exists()

    def test_reading_takes_no_index_lock(self, repo: Path) -> None:
        index = repo / ".git" / "index"
        before = index.stat().st_mtime_ns
        (repo / "app" / "sync.py").touch()
        collect_change_set(open_repo(repo))
        assert index.stat().st_mtime_ns == before  # GIT_OPTIONAL_LOCKS=0: no index refresh written


class TestRepositoryStates:
    def test_outside_a_repository(self, tmp_path: Path) -> None:
        plain = tmp_path / "plain"
        plain.mkdir()
        with pytest.raises(WorkspaceError, match="not inside a git repository"):
            open_repo(plain)

    def test_missing_directory(self, tmp_path: Path) -> None:
        with pytest.raises(WorkspaceError, match="does not exist"):
            open_repo(tmp_path / "nope")

    def test_empty_repository(self, tmp_path: Path) -> None:
        git(tmp_path, "init", "-q", "-b", "main")
        with pytest.raises(WorkspaceError, match="no commits yet"):
            open_repo(tmp_path)

    def test_detached_head_opens_at_its_commit(self, repo: Path) -> None:
        git(repo, "checkout", "-q", "--detach")
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        opened = open_repo(repo)
        assert (opened.head, opened.branch) == (head, None)

    def test_inside_the_git_directory(self, repo: Path) -> None:
        with pytest.raises(WorkspaceError):
            open_repo(repo / ".git")

    def test_git_missing(self, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PATH", str(repo))
        with pytest.raises(WorkspaceError, match="git was not found"):
            open_repo(repo)

    def test_subdirectory_finds_the_root(self, repo: Path) -> None:
        found = open_repo(repo / "app")
        assert found.root == repo.resolve() or found.root == repo
        assert found.branch == "main"

    def test_run_git_failure_is_a_workspace_error(self, repo: Path) -> None:
        with pytest.raises(WorkspaceError, match="git rev-parse failed"):
            run_git(repo, ["rev-parse", "--verify", "no-such-ref"])


@pytest.mark.skipif(shutil.which("git") is None, reason="git is required")
def test_git_version_is_recent_enough() -> None:
    out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = (int(p) for p in out.split()[2].split(".")[:2])
    assert (major, minor) >= (2, 25)  # porcelain=v2 -z and :(literal) pathspecs


@pytest.mark.parametrize(
    ("quoted", "plain"),
    [
        pytest.param('"d/quote\\"d.py"', 'd/quote"d.py', id="quote"),
        pytest.param('"d/tab\\tx.py"', "d/tab\tx.py", id="tab"),
        pytest.param('"caf\\303\\251.py"', "café.py", id="octal-utf8"),
        pytest.param('"back\\\\slash"', "back\\slash", id="backslash"),
        pytest.param("plain name.py", "plain name.py", id="unquoted"),
    ],
)
def test_unquote_git_path(quoted: str, plain: str) -> None:
    assert unquote_git_path(quoted) == plain


@pytest.mark.parametrize("name", [
    pytest.param(".#util.py", id="emacs-lock"),
    pytest.param("#util.py#", id="emacs-autosave"),
    pytest.param("util.py~", id="backup"),
    pytest.param(".util.py.swp", id="vim-swap"),
    pytest.param(".util.py.swo", id="vim-swap-2"),
    pytest.param("4913", id="vim-probe"),
    pytest.param(".~lock.notes.odt#", id="libreoffice-lock"),
])
def test_editor_artefacts_are_not_in_the_change_set(repo: Path, name: str) -> None:
    (repo / "app" / "sync.py").write_text("def run():\n    return 2\n\n\ndef stop():\n    return 0\n")
    before = collect_change_set(open_repo(repo))
    if name.startswith(".#"):
        os.symlink("t@host.12345:1700000000", repo / "app" / name)  # Emacs: a dangling symlink
    else:
        (repo / "app" / name).write_text("swap\n")
    after = collect_change_set(open_repo(repo), {f"app/{name}": "swap\n"})
    assert after.paths == before.paths == ("app/sync.py",)
    assert ROUTER.classify(after, "", None).risk_score == ROUTER.classify(before, "", None).risk_score


def test_an_untracked_folder_of_editor_artefacts_is_skipped_but_real_files_beside_them_count(repo: Path) -> None:
    (repo / "notes").mkdir()
    (repo / "notes" / "todo.md~").write_text("old\n")
    (repo / "notes" / "todo.md").write_text("new\n")
    assert collect_change_set(open_repo(repo)).paths == ("notes/todo.md",)


def test_a_tracked_file_with_an_artefact_like_name_still_counts(repo: Path) -> None:
    (repo / "keep~").write_text("a\n")
    git(repo, "add", "keep~")
    git(repo, "commit", "-q", "-m", "odd name")
    (repo / "keep~").write_text("b\n")
    assert collect_change_set(open_repo(repo)).paths == ("keep~",)
