"""Small real git repositories for end-to-end tests, and a byte-level fingerprint of a user's tree."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

GIT_ID = ["-c", "user.email=dev@example.com", "-c", "user.name=Dev"]

SYNC_PY = '''"""A sync worker that retries failed uploads."""


class Pool:
    def __init__(self) -> None:
        self.in_use = 0

    def acquire(self) -> None:
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1


def sync(pool: Pool, attempts: int) -> int:
    """Retry an upload `attempts` times; every connection must be released."""
    done = 0
    for _ in range(attempts):
        pool.acquire()
        done += 1
    return done
'''

TEST_SYNC_PY = '''from app.sync import Pool, sync


def test_sync_counts_attempts():
    assert sync(Pool(), 3) == 3


def test_sync_releases_connections():
    pool = Pool()
    sync(pool, 3)
    assert pool.in_use == 0
'''

# A fast-lane reply that "fixes" the failure by skipping the test: tamper.
SKIP_TEST_REPLY = '''The test is flaky, skipping it.

```diff
--- a/tests/test_sync.py
+++ b/tests/test_sync.py
@@ -1,4 +1,5 @@
 from app.sync import Pool, sync
+import pytest


 def test_sync_counts_attempts():
@@ -5,6 +6,7 @@ def test_sync_counts_attempts():
     assert sync(Pool(), 3) == 3


+@pytest.mark.skip(reason="flaky")
 def test_sync_releases_connections():
     pool = Pool()
     sync(pool, 3)
```
'''

# The real fix: release the connection after each attempt.
FIX_REPLY = '''Release the connection after every attempt.

```diff
--- a/app/sync.py
+++ b/app/sync.py
@@ -18,5 +18,6 @@ def sync(pool: Pool, attempts: int) -> int:
     done = 0
     for _ in range(attempts):
         pool.acquire()
         done += 1
+        pool.release()
     return done
```
'''


GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
"""The tests' git ignores the machine's and the user's git configuration."""


def git(root: Path, *args: str) -> str:
    """The one git helper of the tests: run git in `root` with a fixed identity; its stdout."""
    return subprocess.run(["git", *GIT_ID, "-C", str(root), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def make_sync_repo(root: Path, *, pending_readme: bool = True) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "sync.py").write_text(SYNC_PY)
    (root / "tests" / "test_sync.py").write_text(TEST_SYNC_PY)
    (root / "README.md").write_text("# Sync worker\n\nUploads with retries.\n")
    (root / ".gitignore").write_text(".route-agent/junit.xml\n__pycache__/\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    git(root, "add", ".")
    git(root, "commit", "-qm", "sync worker")
    if pending_readme:
        (root / "README.md").write_text("# Sync worker\n\nUploads with retries; connections are pooled.\n")
    return root


def fingerprint(root: Path) -> dict[str, str]:
    """Hashes of every file of the working tree and of .git's index, HEAD, refs, config and hooks.

    Objects and the worktree bookkeeping git keeps under .git/worktrees are left out: they are
    git's own caches, not the user's state.
    """
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts[:1] == (".git",) and len(rel_dir.parts) > 1 and rel_dir.parts[1] in ("objects", "worktrees", "logs"):
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and not (rel_dir == Path(".git") and d in ("objects", "worktrees", "logs"))]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                out[str(path.relative_to(root))] = "link:" + os.readlink(path)
            else:
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def held_worktrees(state: Path) -> list[Path]:
    """Worktrees a run still holds: pool slots whose lease lock is taken, and one-off worktrees.

    An idle slot of a repository's pool is the pool working as designed (it is reset before its
    next use), so it is not listed; `pool_worktrees` lists every slot.
    """
    from route_agent.workspace.pool import is_leased

    base = state / "worktrees"
    if not base.exists():
        return []
    held = [p for p in base.iterdir() if p.is_dir() and (p / ".git").exists()]  # one-off worktrees
    held += [slot for slot in pool_worktrees(state) if is_leased(slot.with_name(slot.name + ".lock"))]
    return held


def pool_worktrees(state: Path) -> list[Path]:
    """Every slot directory of every repository's worktree pool under the state directory."""
    base = state / "worktrees"
    return sorted(p for p in base.glob("*/*") if p.is_dir() and (p.parent / "pool.lock").exists()) if base.exists() else []
