"""`route-agent state` and `route-agent state prune`: what the state directory holds, and freeing it."""

from __future__ import annotations

import json

import click

from route_agent.workspace.usage import human, prune_state, state_usage

_WHAT = {
    "worktrees": "reused worktrees (a pool per repository) and one-off ones",
    "runs": "verified patches kept for `route-agent apply`",
    "patches": "patches the editor showed",
    "ledger": "the ledger of attempts (never pruned: routing is tuned from it)",
    "other": "approvals, the latest verification per workspace",
}


@click.group("state", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def state_group(ctx: click.Context, as_json: bool) -> None:
    """Show what the state directory holds and its size (ROUTE_AGENT_STATE_DIR overrides where it is)."""
    if ctx.invoked_subcommand is not None:
        return
    usage = state_usage()
    if as_json:
        click.echo(json.dumps({"path": str(usage.path), "total_bytes": usage.total_bytes,
                               "parts": {p.name: {"count": p.count, "bytes": p.bytes, "details": p.details} for p in usage.parts}},
                              indent=2))
        return
    click.echo(f"state directory: {usage.path}")
    for part in usage.parts:
        click.echo(f"  {part.name:<10} {part.count:>5}  {human(part.bytes):>9}  {_WHAT[part.name]}")
        if part.name in ("worktrees", "ledger"):
            for line in part.details:
                click.echo(f"      {line}")
    click.echo(f"  {'total':<10} {'':>5}  {human(usage.total_bytes):>9}")
    click.echo("free it with `route-agent state prune` (worktrees no run holds, runs older than 30 days; the ledger is kept)")


@state_group.command("prune")
@click.option("--runs-older-than", "days", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Remove stored runs and shown patches older than this many days (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def state_prune(days: float, as_json: bool) -> None:
    """Free the state directory: every worktree no running task holds, old runs; never the ledger."""
    result = prune_state(days)
    if as_json:
        click.echo(json.dumps({"worktrees_removed": [str(p) for p in result.worktrees], "runs_removed": len(result.runs),
                               "freed_bytes": result.freed_bytes, "worktrees_in_use": result.kept_leased}))
        return
    click.echo(f"removed {len(result.worktrees)} worktree(s) and {len(result.runs)} stored run(s)/patch(es); "
               f"freed {human(result.freed_bytes)}")
    if result.kept_leased:
        click.echo(f"kept {result.kept_leased} worktree(s) a running task holds")
