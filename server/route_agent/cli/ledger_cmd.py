"""`route-agent ledger report|export`: what the lanes did, measured."""

from __future__ import annotations

import json

import click

from route_agent.cli.errors import fail
from route_agent.ledger import LedgerError, open_ledger
from route_agent.ledger.report import export_csv, report_json, report_table


@click.group("ledger")
def ledger_group() -> None:
    """Read the ledger of lane attempts (pass rate, escalation, latency, cost, review)."""


_LEDGER_OPTION = click.option(
    "--ledger",
    "location",
    default=None,
    envvar="ROUTE_AGENT_LEDGER",
    help="SQLite file or postgresql:// URL (default: the ledger in the state directory).",
)


@ledger_group.command("report")
@_LEDGER_OPTION
@click.option("--since", default=None, help="Only attempts at or after this ISO date/time (UTC).")
@click.option("--json", "as_json", is_flag=True)
def ledger_report(location: str | None, since: str | None, as_json: bool) -> None:
    """Per lane: tasks, pass rate, escalation rate, latency p50/p90, cost, review rejection rate, common failure."""
    try:
        ledger = open_ledger(location)
        rows = ledger.rows(since)
    except LedgerError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(report_json(rows, ledger.location), indent=2))
    else:
        click.echo(report_table(rows, ledger.location), nl=False)
    ledger.close()


@ledger_group.command("export")
@_LEDGER_OPTION
@click.option("--csv", "as_csv", is_flag=True, required=True, help="CSV with one row per attempt (the only format).")
@click.option("--since", default=None)
def ledger_export(location: str | None, as_csv: bool, since: str | None) -> None:
    """Every attempt as CSV on stdout."""
    try:
        ledger = open_ledger(location)
        rows = ledger.rows(since)
    except LedgerError as exc:
        fail(str(exc))
    click.echo(export_csv(rows), nl=False)
    ledger.close()


@ledger_group.command("mark")
@click.argument("run_id")
@_LEDGER_OPTION
@click.option("--rejected", "reason", required=True, metavar="REASON",
              help="Record that review rejected the run's patch, and why (the review rejection rate counts it).")
def ledger_mark(run_id: str, location: str | None, reason: str) -> None:
    """Record a review decision on RUN_ID's verified patch."""
    if not reason.strip():
        fail("--rejected needs a reason (a few words a teammate can read later)")
    from route_agent.pipeline.artifacts import record_review

    try:
        count = record_review(location, run_id, "rejected", reason=reason.strip())
    except LedgerError as exc:
        fail(str(exc))
    if count == 0:
        fail(f"the ledger has no passing attempt of run {run_id}; "
             "check the run id (`route-agent ledger export --csv`)")
    click.echo(f"run {run_id}: rejected in review ({reason.strip()})")
