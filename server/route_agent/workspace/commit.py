"""`route-agent apply --commit`: commit exactly a verified patch's paths, on a branch.

The user asked for it (`--commit`), so this is the one place route-agent changes the user's refs:
it switches to the branch (created at HEAD when new; uncommitted changes elsewhere come along
untouched, as with `git switch -c`) and commits only the patch's paths, never anything else the user
has staged or changed. Hooks stay off like every git call here (`HARDENING`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from route_agent.workspace.git import Repo, WorkspaceError, run_git


def default_branch(run_id: str) -> str:
    return f"route-agent/{run_id}"


def check_commit_possible(repo: Repo, paths: Sequence[str], branch: str) -> None:
    """Refuse before anything is written: a bad branch name, or the user's own uncommitted changes in
    the patch's paths (they would end up in the commit)."""
    name = run_git(repo.root, ["check-ref-format", "--branch", branch], check=False)
    if name.returncode != 0:
        raise WorkspaceError(f"{branch!r} is not a valid branch name; choose another with --branch")
    if branch != repo.branch and _branch_exists(repo, branch):
        raise WorkspaceError(f"branch {branch!r} already exists; choose another with --branch, or check it out first "
                             "to commit on it")
    status = run_git(repo.root, ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths])
    dirty = sorted({entry[3:] for entry in status.stdout.decode("utf-8", "surrogateescape").split("\0") if len(entry) > 3})
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" (+{len(dirty) - 5} more)" if len(dirty) > 5 else "")
        raise WorkspaceError(f"the patch's files have uncommitted changes of yours ({shown}); they would go into the commit. "
                             "Commit or stash them first, or apply without --commit")


def _branch_exists(repo: Repo, branch: str) -> bool:
    return run_git(repo.root, ["rev-parse", "-q", "--verify", f"refs/heads/{branch}"], check=False).returncode == 0


def commit_patch(repo: Repo, paths: Sequence[str], branch: str, message: str) -> str:
    """Switch to `branch` (created at HEAD when new) and commit `paths` as they are on disk; the commit id."""
    if branch != repo.branch:
        run_git(repo.root, ["switch", "-q", "-c", branch])
    message_file = repo.git_dir / "ROUTE_AGENT_COMMIT_MSG"
    message_file.write_text(message, "utf-8")
    try:
        # --only with paths: exactly these paths' working-tree state, whatever else is staged.
        proc = run_git(repo.root, ["commit", "-q", "--no-verify", "--only", "-F", str(message_file), "--", *paths], check=False)
    finally:
        message_file.unlink(missing_ok=True)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        hint = " (set user.name and user.email with git config)" if "identity" in err or "user.email" in err else ""
        raise WorkspaceError(f"git commit failed on branch {branch}: {err.splitlines()[-1] if err else proc.returncode}{hint}; "
                             "the patch is applied in your files, uncommitted")
    return run_git(repo.root, ["rev-parse", "HEAD"]).stdout.decode().strip()


def commit_trailers(repo_root: Path, commit: str) -> dict[str, str]:
    """The trailers of `commit` as git parses them (`git interpret-trailers --parse`)."""
    body = run_git(repo_root, ["log", "-1", "--format=%B", commit]).stdout
    parsed = run_git(repo_root, ["interpret-trailers", "--parse"], input_bytes=body).stdout.decode("utf-8", "replace")
    out: dict[str, str] = {}
    for line in parsed.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out
