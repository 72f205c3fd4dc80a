"""Issue 12, items 1, 6, 7, 10, 13 and 14: what a hostile repository or model tried, met as a user meets
it (`route-agent route` / `apply`, or the language server), with the safety suite's "nothing was lost"
assertions. Each test names its item; SECURITY.md's second table lists them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from safety_support import Scenario

from support.repos import FIX_REPLY, git

TASK = "fix retry leak in sync worker"

SEARCH_REPLACE_FIX = """Release the connection after every attempt.

app/sync.py
<<<<<<< SEARCH
        pool.acquire()
        done += 1
=======
        pool.acquire()
        done += 1
        pool.release()
>>>>>>> REPLACE
"""


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def outside_file(s: Scenario, name: str = ".bashrc") -> tuple[Path, bytes, int]:
    """A file outside the repository (a shell start-up file), with its bytes and mode."""
    home = s.tmp / "home"
    home.mkdir(exist_ok=True)
    target = home / name
    target.write_text("# the user's shell start-up file\nexport PATH=$HOME/bin:$PATH\n")
    os.chmod(target, 0o600)
    return target, target.read_bytes(), stat.S_IMODE(target.stat().st_mode)


def assert_untouched(target: Path, data: bytes, mode: int) -> None:
    assert target.read_bytes() == data, f"{target} (outside the repository) was written"
    assert stat.S_IMODE(target.stat().st_mode) == mode, f"{target} (outside the repository) was chmod-ed"


# -- 1: a committed symlink named like route-agent's temporary file -------------------------------------------------

@pytest.mark.parametrize("reply", ["unified-diff", "search-replace"])
def test_issue12_item01_committed_temp_file_symlink_is_never_written_through(scenario: Scenario, reply: str) -> None:
    s = scenario
    target, data, mode = outside_file(s)
    os.chmod(s.repo / "app" / "sync.py", 0o755)  # a chmod that followed the link would show on the outside file
    (s.repo / "app" / ".sync.py.route-agent-tmp").symlink_to(target)
    commit_all(s.repo, "temp-file look-alikes pointing outside")
    s.snapshot()
    if reply == "search-replace":
        s.fake.script("fast-fixer", reply=SEARCH_REPLACE_FIX)
        s.fake.script("strong-fixer", reply=SEARCH_REPLACE_FIX)
    else:
        assert "pool.release()" in FIX_REPLY

    r = s.route(TASK, policy=s.policy())
    assert r.out is not None, r.text
    assert r.out["result"] == "pass", r.text
    assert_untouched(target, data, mode)  # the SEARCH/REPLACE edit in the worktree did not write through it
    s.assert_nothing_lost()

    applied = s.cli("apply", r.out["run_id"])
    assert applied.code == 0, applied.text
    sync = s.repo / "app" / "sync.py"
    assert not sync.is_symlink() and sync.is_file()
    assert "pool.release()" in sync.read_text()
    assert stat.S_IMODE(sync.stat().st_mode) == 0o755
    assert_untouched(target, data, mode)
    link = s.repo / "app" / ".sync.py.route-agent-tmp"
    assert link.is_symlink() and os.readlink(link) == str(target), "the user's committed link was replaced"
    assert not [p.name for p in (s.repo / "app").iterdir() if p.name.endswith(".route-agent-tmp") and not p.is_symlink()]
    s.assert_nothing_lost(applied=True)

