"""workspace/safefs.py: every write in a repository or worktree refuses links anywhere on the way."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from route_agent.workspace.safefs import LinkRefused, make_symlink, remove_file, write_file


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "profile").write_text("outside\n")
    return root, outside


def test_replaces_a_file_keeping_its_mode_and_leaves_no_temporary_file(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    target = root / "app" / "x.py"
    target.write_text("old\n")
    os.chmod(target, 0o751)
    write_file(root, "app/x.py", b"new\n")
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o751
    assert sorted(p.name for p in (root / "app").iterdir()) == ["x.py"]


def test_creates_missing_directories_and_uses_an_explicit_mode(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    write_file(root, "a/b/c.txt", b"hi", mode=0o640)
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"hi"
    assert stat.S_IMODE((root / "a" / "b" / "c.txt").stat().st_mode) == 0o640


@pytest.mark.parametrize("link", ["app", "app/x.py"], ids=["directory-is-a-link", "file-is-a-link"])
def test_refuses_a_link_on_the_way_and_writes_nothing_outside(tree: tuple[Path, Path], link: str) -> None:
    root, outside = tree
    if link == "app":
        (root / "app").rmdir()
        (root / "app").symlink_to(outside)
    else:
        (root / "app" / "x.py").symlink_to(outside / "profile")
    with pytest.raises(LinkRefused):
        write_file(root, "app/x.py", b"pwned\n")
    assert (outside / "profile").read_text() == "outside\n"
    assert sorted(p.name for p in outside.iterdir()) == ["profile"]


def test_a_link_named_like_the_old_temporary_file_is_ignored(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "app" / ".x.py.route-agent-tmp").symlink_to(outside / "profile")
    write_file(root, "app/x.py", b"fixed\n")
    assert (root / "app" / "x.py").read_text() == "fixed\n" and not (root / "app" / "x.py").is_symlink()
    assert (outside / "profile").read_text() == "outside\n"
    assert (root / "app" / ".x.py.route-agent-tmp").is_symlink()


def test_remove_and_make_symlink_never_follow_a_linked_directory(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "app").rmdir()
    (root / "app").symlink_to(outside)
    with pytest.raises(LinkRefused):
        remove_file(root, "app/profile")
    with pytest.raises(LinkRefused):
        make_symlink(root, "app/evil", "/etc/passwd")
    assert sorted(p.name for p in outside.iterdir()) == ["profile"]
