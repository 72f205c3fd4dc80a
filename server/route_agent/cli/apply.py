"""`route-agent apply RUN_ID`: move a verified patch into the user's files.

Exit codes: 0 applied; 1 a conflict with the user's edits since the run (nothing written);
2 usage or workspace error (no such run, not a repository).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from route_agent.workspace.git import WorkspaceError, open_repo
from route_agent.workspace.patches import PatchRejected
from route_agent.workspace.worktree import apply_to_user_tree

EXIT_APPLIED, EXIT_CONFLICT, EXIT_USAGE = 0, 1, 2


@click.command("apply")
@click.argument("run_id")
@click.option("--workspace", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Repository to apply to (default: the current directory).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def apply_command(run_id: str, workspace: Path | None, as_json: bool) -> None:
    """Apply the verified patch of RUN_ID to your files (three-way merge; a conflict writes nothing)."""
    try:
        repo = open_repo((workspace or Path.cwd()).absolute())
        result = apply_to_user_tree(repo, run_id)
    except (WorkspaceError, PatchRejected) as exc:
        click.echo(f"route-agent: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "applied": result.applied, "paths": list(result.paths),
                               "merged": list(result.merged), "conflicts": list(result.conflicts),
                               "message": result.message}))
    else:
        click.echo(result.message, err=not result.applied)
        for path in result.conflicts:
            click.echo(f"conflict: {path}", err=True)
    raise SystemExit(EXIT_APPLIED if result.applied else EXIT_CONFLICT)
