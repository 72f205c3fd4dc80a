"""`route-agent apply RUN_ID [--commit [--branch NAME]]` and `route-agent pr-body RUN_ID`.

apply moves a verified patch into the user's files; with `--commit` it then commits exactly the
patch's paths on a branch (new by default), with a message written from the run and trailers.
pr-body prints a Markdown pull request description of the run.

Exit codes: 0 applied; 1 a conflict with the user's edits since the run (nothing written);
2 usage or workspace error (no such run, not a repository, a stored run that does not match what was
verified, a commit that cannot be made).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from route_agent.ledger import LedgerError
from route_agent.pipeline.artifacts import apply_run, load_run, pr_body, record_review
from route_agent.workspace.git import WorkspaceError, open_repo
from route_agent.workspace.patches import PatchRejected

EXIT_APPLIED, EXIT_CONFLICT, EXIT_USAGE = 0, 1, 2


def _stop(message: str) -> None:
    click.echo(f"route-agent: {message}", err=True)
    raise SystemExit(EXIT_USAGE)


@click.command("apply")
@click.argument("run_id")
@click.option("--workspace", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Repository to apply to (default: the current directory).")
@click.option("--commit", "commit", is_flag=True, help="Then commit exactly the patch's files, on a branch.")
@click.option("--branch", default=None, help="Branch for --commit (default: a new route-agent/RUN_ID; your current branch's "
                                             "name commits there).")
@click.option("--ledger", "ledger_location", default=None, envvar="ROUTE_AGENT_LEDGER",
              help="Where to record the review (default: the ledger in the state directory).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def apply_command(run_id: str, workspace: Path | None, commit: bool, branch: str | None, ledger_location: str | None,
                  as_json: bool) -> None:
    """Apply the verified patch of RUN_ID to your files (three-way merge; a conflict writes nothing)."""
    if branch is not None and not commit:
        _stop("--branch needs --commit")
    try:
        repo = open_repo((workspace or Path.cwd()).absolute())
        result, commit_id, target = apply_run(repo, run_id, commit=commit, branch=branch)
    except (WorkspaceError, PatchRejected) as exc:
        _stop(str(exc))
        return
    if result.applied:
        _record_review(ledger_location, run_id, "accepted", commit_id=commit_id)
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "applied": result.applied, "paths": list(result.paths),
                               "merged": list(result.merged), "conflicts": list(result.conflicts),
                               "message": result.message, "commit": commit_id, "branch": target if commit_id else None}))
    else:
        click.echo(result.message, err=not result.applied)
        if commit_id:
            click.echo(f"committed {commit_id[:12]} on branch {target}")
        for path in result.conflicts:
            click.echo(f"conflict: {path}", err=True)
    raise SystemExit(EXIT_APPLIED if result.applied else EXIT_CONFLICT)


def _record_review(location: str | None, run_id: str, review: str, reason: str | None = None, commit_id: str | None = None) -> int:
    """The review in the ledger; a ledger that cannot be written is a warning here (the patch is
    applied either way), never lost silently."""
    try:
        return record_review(location, run_id, review, reason, commit_id)
    except LedgerError as exc:
        click.echo(f"route-agent: warning: the review of run {run_id} was not recorded: {exc}", err=True)
        return 0


@click.command("pr-body")
@click.argument("run_id")
def pr_body_command(run_id: str) -> None:
    """Print a Markdown pull request description of RUN_ID: brief, risk, lane, attempts, cost."""
    try:
        meta = load_run(run_id)
    except WorkspaceError as exc:
        _stop(str(exc))
        return
    click.echo(pr_body(run_id, meta), nl=False)
