"""Installed-dependency folders in the worktree (workspace/dependencies.py): which folders are bound
(untracked, inside the repository, named safely), read-only in the sandbox, a link without it that
never outlives the checks or the lease, and never copied into the worktree's snapshot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from route_agent.policy.models import Check, Verification
from route_agent.policy.toolchain import detect_checks, read_repo_facts
from route_agent.verify.checks import run_checks
from route_agent.workspace.dependencies import resolve_dependency_dirs
from route_agent.workspace.git import open_repo
from route_agent.workspace.pool import lease_worktree
from support.repos import git


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(path))
    return path


def node_repo(root: Path, ignore: bool = True) -> Path:
    """A committed package.json repository with a node_modules folder the user installed (untracked)."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "package.json").write_text('{"name": "calc", "scripts": {"test": "node --test"}}\n')
    if ignore:
        (root / ".gitignore").write_text("node_modules/\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "calc")
    package = root / "node_modules" / "tiny"
    package.mkdir(parents=True)
    (package / "index.js").write_text("module.exports = 1;\n")
    return root


def worktree_of(tmp_path: Path) -> Path:
    worktree = tmp_path / "wt"
    worktree.mkdir()
    subprocess.run(["git", "init", "-q", str(worktree)], check=True)
    return worktree


# -- which folders ----------------------------------------------------------------------------------

def test_an_untracked_installed_folder_is_bound_from_its_resolved_place(tmp_path: Path) -> None:
    root = node_repo(tmp_path / "repo")
    deps = resolve_dependency_dirs(root, ["node_modules", "vendor/node_modules"])  # the second is not installed
    assert deps.names == ("node_modules",) and deps.refused == ()
    assert deps.dirs[0].source == (root / "node_modules").resolve()


def test_a_tracked_folder_is_not_bound_it_is_in_the_worktree_already(tmp_path: Path) -> None:
    root = node_repo(tmp_path / "repo", ignore=False)
    git(root, "add", "node_modules/tiny/index.js")
    git(root, "commit", "-qm", "vendored")
    deps = resolve_dependency_dirs(root, ["node_modules"])
    assert deps.dirs == () and deps.refused == ()


def test_a_link_inside_the_repository_is_bound_at_its_target(tmp_path: Path) -> None:
    root = node_repo(tmp_path / "repo")
    (root / "node_modules").rename(root / "installed")
    (root / "node_modules").symlink_to("installed", target_is_directory=True)
    deps = resolve_dependency_dirs(root, ["node_modules"])
    assert deps.names == ("node_modules",) and deps.dirs[0].source == (root / "installed").resolve()


@pytest.mark.parametrize("target", [
    pytest.param("outside", id="a-folder-outside"),
    pytest.param("repo/.git", id="git-own-directory"),
    pytest.param("missing", id="broken-link"),
])
def test_a_link_out_of_the_repository_is_refused_and_nothing_is_bound(tmp_path: Path, target: str) -> None:
    root = node_repo(tmp_path / "repo")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "id_ed25519").write_text("a key\n")
    os.rename(root / "node_modules", tmp_path / "was-installed")
    (root / "node_modules").symlink_to(tmp_path / target, target_is_directory=True)
    deps = resolve_dependency_dirs(root, ["node_modules"])
    assert deps.dirs == ()
    assert deps.refused_paths == ("node_modules",) and deps.never_copied == ("node_modules",)
    (message,) = deps.refused
    assert message.startswith("dependency folder node_modules ") and "not made visible to checks" in message


def test_a_parent_folder_that_links_out_is_refused(tmp_path: Path) -> None:
    root = node_repo(tmp_path / "repo")
    (tmp_path / "elsewhere" / "node_modules").mkdir(parents=True)
    (root / "packages").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    deps = resolve_dependency_dirs(root, ["packages/node_modules"])
    assert deps.dirs == () and "outside the repository" in deps.refused[0]


@pytest.mark.parametrize("name", [
    pytest.param("../node_modules", id="climbs-out"),
    pytest.param("/home/user/.ssh", id="absolute"),
    pytest.param(".git", id="git-dir"),
    pytest.param(".git/hooks", id="inside-git"),
    pytest.param(".GIT", id="git-any-case"),
    pytest.param("a//b", id="empty-part"),
    pytest.param("node_modules\\x", id="backslash"),
])
def test_a_policy_cannot_name_a_folder_outside_the_repository(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValidationError, match=r"verification\.dependency_dirs"):
        Verification(dependency_dirs=[name])
    # and resolving refuses it too (a name that did not come through the policy model)
    root = node_repo(tmp_path / "repo")
    deps = resolve_dependency_dirs(root, [name])
    assert deps.dirs == () and len(deps.refused) == 1


def test_a_look_alike_of_git_is_refused_when_resolved(tmp_path: Path) -> None:
    root = node_repo(tmp_path / "repo")
    deps = resolve_dependency_dirs(root, [".gi\u200bt/x"])  # a zero-width space: git's own name in disguise
    assert deps.dirs == () and ".git" in deps.refused[0]


@pytest.mark.parametrize(("files", "dirs", "expected"), [
    pytest.param(["package.json"], ["node_modules"], ("node_modules",), id="node"),
    pytest.param(["package.json"], [], (), id="node-not-installed"),
    pytest.param(["pyproject.toml"], [".venv"], (".venv",), id="python-venv"),
    pytest.param(["go.mod"], ["node_modules"], (), id="not-a-node-project"),
])
def test_detected_folders_follow_the_toolchain(tmp_path: Path, files: list[str], dirs: list[str], expected: tuple[str, ...]) -> None:
    for name in files:
        (tmp_path / name).write_text("{}\n" if name.endswith(".json") else "")
    for name in dirs:
        (tmp_path / name).mkdir()
    detected = detect_checks(read_repo_facts(tmp_path))
    assert detected.dependency_dirs == expected
    assert detected.policy_data()["verification"].get("dependency_dirs", []) == list(expected)


# -- checks see them ------------------------------------------------------------------------------

async def test_in_the_sandbox_the_folder_is_visible_and_read_only(tmp_path: Path) -> None:
    root = node_repo(tmp_path / "repo")
    worktree = worktree_of(tmp_path)
    deps = resolve_dependency_dirs(root, ["node_modules"])
    read = Check(name="read", run=["cat", "node_modules/tiny/index.js"])
    write = Check(name="write", run=["sh", "-c", "echo tampered > node_modules/tiny/index.js"])
    add = Check(name="add", run=["touch", "node_modules/planted.js"])
    report = await run_checks([read, write, add], worktree, main_root=root, main_git_dir=root / ".git", sandbox_mode="required",
                              dependencies=deps)
    runs = {r.name: r for r in report.runs}
    assert runs["read"].status == "pass" and "module.exports = 1;" in runs["read"].output_excerpt
    assert runs["write"].status == "fail" and "Read-only file system" in runs["write"].output_excerpt
    assert runs["add"].status == "fail" and "Read-only file system" in runs["add"].output_excerpt
    assert (root / "node_modules" / "tiny" / "index.js").read_text() == "module.exports = 1;\n"
    assert not (root / "node_modules" / "planted.js").exists()
    # outside the sandbox the worktree holds an empty mount point only: nothing of the folder was copied
    assert list((worktree / "node_modules").iterdir()) == []


async def test_without_the_sandbox_a_link_is_there_for_the_checks_only(tmp_path: Path) -> None:
    root = node_repo(tmp_path / "repo")
    worktree = worktree_of(tmp_path)
    deps = resolve_dependency_dirs(root, ["node_modules"])
    read = Check(name="read", run=["cat", "node_modules/tiny/index.js"])
    report = await run_checks([read], worktree, main_root=root, main_git_dir=root / ".git", sandbox_mode="off", dependencies=deps)
    assert report.runs[0].status == "pass" and "module.exports = 1;" in report.runs[0].output_excerpt
    assert not os.path.lexists(worktree / "node_modules"), "the link outlived the checks"
    assert (root / "node_modules" / "tiny" / "index.js").is_file()


async def test_a_check_without_dependencies_does_not_see_the_folder(tmp_path: Path) -> None:
    """The contrast that shows the two tests above are not vacuous."""
    root = node_repo(tmp_path / "repo")
    worktree = worktree_of(tmp_path)
    read = Check(name="read", run=["cat", "node_modules/tiny/index.js"])
    report = await run_checks([read], worktree, main_root=root, main_git_dir=root / ".git", sandbox_mode="off")
    assert report.runs[0].status == "fail"


# -- the pool never copies them, and the lease removes what it made ---------------------------------

def test_an_unignored_node_modules_is_never_copied_and_its_link_goes_with_the_lease(tmp_path: Path) -> None:
    root = node_repo(tmp_path / "repo", ignore=False)  # git status lists every file under it as untracked
    (root / "notes.txt").write_text("untracked notes\n")
    deps = resolve_dependency_dirs(root, ["node_modules"])
    lease = lease_worktree(open_repo(root))
    lease.dependency_dirs = deps.never_copied
    wt = lease.prepare()
    assert (wt.path / "notes.txt").is_file() and not os.path.lexists(wt.path / "node_modules")
    assert "notes.txt" in wt.copied and not any(p.startswith("node_modules") for p in wt.copied)
    os.symlink(deps.dirs[0].source, wt.path / "node_modules")  # what an unsandboxed check leaves
    lease.release()
    assert not os.path.lexists(wt.path / "node_modules")
    assert (root / "node_modules" / "tiny" / "index.js").read_text() == "module.exports = 1;\n", "removed through the link"


def test_a_reset_removes_a_left_link_without_following_it(tmp_path: Path) -> None:
    root = node_repo(tmp_path / "repo")
    deps = resolve_dependency_dirs(root, ["node_modules"])
    repo = open_repo(root)
    lease = lease_worktree(repo)
    wt = lease.prepare()
    os.symlink(deps.dirs[0].source, wt.path / "node_modules")
    again = lease.prepare()  # a killed run's link: the reset sees an ignored entry and unlinks it
    assert not os.path.lexists(again.path / "node_modules")
    assert (root / "node_modules" / "tiny" / "index.js").is_file()
    lease.release()

