"""`route-agent`: route a task from the terminal, check policies, serve the editor, read the ledger.

Exit codes: 0 pass or dry run; 1 failed after escalation; 2 usage, policy or configuration error.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import BinaryIO, NoReturn

import click

from route_agent import __version__
from route_agent.cli.errors import EXIT_CONFIG, EXIT_OK, fail
from route_agent.cli.terminal import protect_streams
from route_agent.pipeline.approve import approval_state, approve
from route_agent.pipeline.prepare import Refusal, RunPlan, RunRefused, RunSettings, plan_run, prepare_run, repository_policy_refusal
from route_agent.policy import (
    LoadedPolicy,
    PolicyCache,
    PolicyError,
    check_policy_file,
    effective_always_strong,
    policy_json_schema,
)
from route_agent.policy.approval import commands_diff
from route_agent.workspace.git import WorkspaceError, open_repo
from route_agent.workspace.state import user_policy_path

MAX_TASK_FILE_BYTES = 64 * 1024 * 1024
"""A brief read from a file is refused above this; the classifier scans and sends far less (taint.py)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="route-agent")
def cli() -> None:
    """Route coding-agent tasks by risk to a fast or strong model lane, verify, escalate.

    `route-agent --task TEXT` is the same as `route-agent route --task TEXT`.
    """


def load_policy_or_exit(root: Path | None, explicit: Path | None) -> LoadedPolicy:
    try:
        loaded = PolicyCache().for_workspace(root, explicit, user_policy_path())
    except PolicyError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise SystemExit(EXIT_CONFIG) from None
    for warning in loaded.warnings:  # a repository's policy lowered a protection: ignored, said every time
        click.echo(f"route-agent: warning: {warning}", err=True)
    return loaded


def print_refusal(refusal: Refusal) -> NoReturn:
    """A run the pipeline refused: the reason on stderr (every issue of a broken policy, every command
    of an unapproved one and what changed), then exit 2."""
    if refusal.kind == "policy" and refusal.issues:
        for issue in refusal.issues:
            click.echo(str(issue), err=True)
        raise SystemExit(EXIT_CONFIG)
    status = refusal.approval
    if refusal.kind != "unapproved" or status is None:
        fail(refusal.message)
    root = refusal.workspace or status.policy_path.parent
    rel = status.policy_path.relative_to(root) if status.policy_path.is_relative_to(root) else status.policy_path
    changed = status.previous is not None
    click.echo(
        f"route-agent: the repository policy {rel} declares commands (checks or agents) that "
        + ("changed since you approved them" if changed else "you have not approved")
        + "; nothing was run:",
        err=True,
    )
    for command in status.commands:
        click.echo(f"  {command.line()}", err=True)
    click.echo(f"  sha256: {status.sha256}", err=True)
    if status.previous is not None:
        added, removed = commands_diff(status.previous, status.commands)
        click.echo("changed since your last approval:", err=True)
        for line in added:
            click.echo(f"  + {line}", err=True)
        for line in removed:
            click.echo(f"  - {line}", err=True)
    click.echo(f"review them, then approve with: route-agent policy approve --workspace {root}", err=True)
    raise SystemExit(EXIT_CONFIG)


def print_dry_run(plan: RunPlan, as_json: bool, started: float, note: str | None, settings: RunSettings | None = None) -> NoReturn:
    from route_agent.cli.render import human_decision, json_base, verification_line
    from route_agent.lanes.estimate import estimate_call_cost

    decision, spec = plan.decision, plan.spec
    checks = list(getattr(plan.loaded.policy.verification, decision.lane))
    # A dry run says what a real run would stop at: a repository policy's unapproved commands or remote endpoints.
    blocked = repository_policy_refusal(settings, plan) if settings is not None and settings.explicit_policy is None else None
    estimate = estimate_call_cost(spec, plan.change_set)
    elapsed = round(time.monotonic() - started, 3)
    if as_json:
        out = json_base(decision, checks)
        out.update({"attempts": [], "result": "dry-run", "cost_usd_estimate": estimate, "latency_seconds": elapsed,
                    "model": spec.model, "policy_sources": list(plan.loaded.sources), "base_commit": plan.repo.head,
                    "policy_warnings": [str(w) for w in plan.loaded.warnings]})
        if note:
            out["note"] = note
        if blocked is not None:
            out["would_be_refused"] = blocked.message
        click.echo(json.dumps(out, indent=2))
    else:
        for line in human_decision(decision):
            click.echo(line)
        click.echo(f"verification: {verification_line(checks)}")
        click.echo("result: dry-run")
        click.echo(f"cost_usd_estimate: {estimate:.2f}")
        click.echo(f"latency_seconds: {elapsed:.1f}")
        if note:
            click.echo(note)
        if blocked is not None:
            click.echo(f"a run would be refused: {blocked.message}")
    raise SystemExit(EXIT_OK)


def print_policy_warnings(loaded: LoadedPolicy) -> None:
    for warning in loaded.warnings:  # a repository's policy lowered a protection: ignored, said every time
        click.echo(f"route-agent: warning: {warning}", err=True)


def route_settings(task: str, workspace: Path | None, policy_path: Path | None, lane: str, ledger_location: str | None,
                   sandbox: str | None, test_report: Path | None) -> RunSettings:
    """The CLI's side of `pipeline.prepare`: the flags, and this process's environment."""
    return RunSettings(root=(workspace or Path.cwd()).absolute(), brief=task, lane=lane,  # type: ignore[arg-type]
                       explicit_policy=policy_path, ledger_location=ledger_location, sandbox=sandbox, test_report=test_report)


@cli.command("route")
@click.option("--task", "task", default=None, help="The task brief (tainted text: it can raise risk, never lower it).")
@click.option("--task-file", "task_file", type=click.File("rb"), default=None,
              help="Read the brief from a file ('-' for stdin), for briefs longer than a command line allows.")
@click.option("--workspace", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Repository to work in (default: the current directory).")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Policy file layered over the default (instead of the repository's).")
@click.option("--lane", type=click.Choice(["auto", "fast", "strong"]), default="auto", show_default=True,
              help="Ask for a lane: fast overrules the thresholds (booked as an override), never the always-strong floor.")
@click.option("--test-report", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="JUnit XML whose failures count as test_failures (default: the latest verification).")
@click.option("--dry-run", is_flag=True, help="Decide and plan only; call no model.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--ledger", "ledger_location", default=None, envvar="ROUTE_AGENT_LEDGER",
              help="SQLite file or postgresql:// URL for the attempt ledger (default: the state directory).")
@click.option("--sandbox", type=click.Choice(["auto", "required", "off"]), default=None,
              help="Override the policy's verification.sandbox for this run.")
def route_command(task: str | None, task_file: BinaryIO | None, workspace: Path | None, policy_path: Path | None, lane: str,
                  test_report: Path | None, dry_run: bool,
                  as_json: bool, ledger_location: str | None, sandbox: str | None) -> None:
    """Score the change set and the brief, choose a lane, and run it (or plan it in a dry run)."""
    started = time.monotonic()
    if (task is None) == (task_file is None):
        fail("give the brief with exactly one of --task TEXT or --task-file FILE")
    if task_file is not None:
        raw = task_file.read(MAX_TASK_FILE_BYTES + 1)
        if len(raw) > MAX_TASK_FILE_BYTES:
            fail(f"the brief is over {MAX_TASK_FILE_BYTES // (1024 * 1024)} MB; shorten it")
        task = raw.decode("utf-8", "replace")
    assert task is not None
    settings = route_settings(task, workspace, policy_path, lane, ledger_location, sandbox, test_report)
    if dry_run:
        try:
            plan = plan_run(settings)
        except RunRefused as exc:
            print_refusal(exc.refusal)
        print_policy_warnings(plan.loaded)
        print_dry_run(plan, as_json, started, None, settings)
    try:
        prepared = prepare_run(settings)
    except RunRefused as exc:
        if exc.plan is not None:
            print_policy_warnings(exc.plan.loaded)
        if exc.refusal.kind == "missing_key" and exc.plan is not None:
            # Decided once (pipeline/prepare.py): with no key, the terminal shows what would happen.
            note = (f"dry run: {exc.refusal.missing} is not set, so no model was called "
                    f"(set it to run {exc.refusal.missing_for or f'the {exc.plan.decision.lane} lane: {exc.plan.spec.model}'})")
            print_dry_run(exc.plan, as_json, started, note, settings)
        print_refusal(exc.refusal)
    print_policy_warnings(prepared.plan.loaded)
    from route_agent.cli.run import run_routed

    raise SystemExit(run_routed(prepared, as_json, started))


@cli.group("policy")
def policy_group() -> None:
    """Check, print and explain routing policies."""


@policy_group.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def policy_check(file: Path) -> None:
    """Validate FILE layered over the shipped default; errors as FILE:LINE:COL: message."""
    try:
        loaded = check_policy_file(file)
    except PolicyError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise SystemExit(EXIT_CONFIG) from None
    commands = sum(len(getattr(loaded.policy.verification, lane)) for lane in ("fast", "strong"))
    click.echo(f"{file}: ok ({commands} verification command(s); always-strong: {', '.join(loaded.always_strong_conditions)})")
    from route_agent.policy.approval import endpoint_overrides_in

    remote = endpoint_overrides_in(file)
    if remote:
        click.echo(f"{file}: note: as a repository's policy (.route-agent/policy.yaml) this file would be refused: it sets "
                   f"{', '.join(remote)}, and a repository may point models only at endpoints on this machine; as your own "
                   "policy or with --policy it is used")


@policy_group.command("approve")
@click.option("--workspace", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Repository whose policy to approve (default: the current directory).")
@click.option("--yes", is_flag=True, help="Approve without asking (the commands are still printed).")
@click.option("--sha256", "expected", default=None, help="Approve only if the commands' SHA-256 is this one (as shown earlier).")
@click.option("--unsandboxed", is_flag=True,
              help="Instead: accept that this repository's checks and tests run without the sandbox (as you, seeing your keys).")
def policy_approve(workspace: Path | None, yes: bool, expected: str | None, unsandboxed: bool) -> None:  # noqa: PLR0912 (the approval dialogue reads top to bottom)
    """Approve the exact verification commands the repository's policy declares (stored as a SHA-256)."""
    if unsandboxed:
        try:
            accept_unsandboxed(open_repo((workspace or Path.cwd()).absolute()).root, yes)
        except WorkspaceError as exc:
            fail(str(exc))
        return
    try:
        state = approval_state((workspace or Path.cwd()).absolute())
    except WorkspaceError as exc:
        fail(str(exc))
    except PolicyError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise SystemExit(EXIT_CONFIG) from None
    print_policy_warnings(state.loaded)
    status = state.status
    if status is None:
        click.echo(f"{state.root}: the repository declares no verification commands of its own; nothing to approve")
        return
    click.echo(f"policy: {status.policy_path}")
    for command in status.commands:
        click.echo(f"  {command.line()}")
    click.echo(f"sha256: {status.sha256}")
    if status.approved:
        click.echo("already approved")
        return
    if status.previous is not None:
        added, removed = commands_diff(status.previous, status.commands)
        click.echo("changed since your last approval:")
        for line in added:
            click.echo(f"  + {line}")
        for line in removed:
            click.echo(f"  - {line}")
    if expected is not None and expected.strip().lower() != status.sha256:
        fail(f"the commands' sha256 is {status.sha256}, not {expected}; nothing was approved")
    if not yes and not click.confirm("Allow these commands to run when route-agent verifies a patch?", default=False):
        click.echo("not approved", err=True)
        raise SystemExit(EXIT_CONFIG)
    approve(state, status.sha256)
    click.echo(f"approved ({len(status.commands)} command(s))")


def accept_unsandboxed(root: Path, yes: bool) -> None:
    from route_agent.workspace.approvals import record_unsandboxed, unsandboxed_accepted

    click.echo(f"{root}: without the sandbox, this repository's checks, its tests and its conftest run as you: they can read "
               "your files and the keys your shell exported (from /proc of their parent processes), and reach the network.")
    if unsandboxed_accepted(root):
        click.echo("already accepted")
        return
    if not yes and not click.confirm("Run this repository's code without the sandbox when bubblewrap is off or missing?", default=False):
        click.echo("not accepted", err=True)
        raise SystemExit(EXIT_CONFIG)
    record_unsandboxed(root)
    click.echo("accepted: every unsandboxed run still says 'not sandboxed'")


@policy_group.command("schema")
def policy_schema() -> None:
    """Print the policy file's JSON Schema."""
    click.echo(policy_json_schema(), nl=False)


@policy_group.command("explain")
@click.option("--workspace", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--policy", "policy_path", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True)
def policy_explain(workspace: Path | None, policy_path: Path | None, as_json: bool) -> None:
    """Print the effective policy (layers merged), the built-in floor included."""
    root: Path | None = None
    try:
        root = open_repo((workspace or Path.cwd()).absolute()).root
    except WorkspaceError:
        root = None  # explaining the default outside a repository is fine
    loaded = load_policy_or_exit(root, policy_path)
    data = loaded.policy.model_dump(mode="json")
    data["effective_always_strong"] = list(effective_always_strong(loaded.policy))
    from route_agent.policy.floor import FLOOR_GLOBS

    data["floor_globs"] = {k: list(v) for k, v in FLOOR_GLOBS.items()}
    data["sources"] = list(loaded.sources)
    data["policy_warnings"] = [str(w) for w in loaded.warnings]
    learned = loaded.policy.routing.learned
    if learned is not None:
        from route_agent.policy.predictor import load_predictor

        predictor = load_predictor(learned.predictor)
        data["learned_predictor"] = {
            "file": learned.predictor,
            "trained": dict(predictor.meta),
            "typical_cost": dict(predictor.cost),
            "models": {
                target: {"intercept": round(model.intercept, 4), "trained_on": model.trained_on, "positives": model.positives,
                         "coefficients": {k: round(v, 4) for k, v in sorted(model.coef.items(), key=lambda kv: -abs(kv[1]))
                                          if abs(v) > 1e-6}}
                for target, model in predictor.models.items()
            },
            "note": "logit = intercept + sum(coefficient x (feature - mean) / scale); features: route_agent/routing/learned.py",
        }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    import yaml

    click.echo("# layers, lowest first: " + " <- ".join(loaded.sources))
    click.echo("# always strong (built-in floor plus routing.always_strong_if): " + ", ".join(data["effective_always_strong"]))
    click.echo(yaml.safe_dump(data, sort_keys=False, width=100), nl=False)


from route_agent.cli.ledger_cmd import ledger_group  # noqa: E402

cli.add_command(ledger_group)

from route_agent.cli.eval_cmd import register as register_eval  # noqa: E402

register_eval(cli, policy_group)

from route_agent.cli.apply import apply_command, pr_body_command  # noqa: E402

cli.add_command(apply_command)
cli.add_command(pr_body_command)

from route_agent.cli.state_cmd import state_group  # noqa: E402

cli.add_command(state_group)

from route_agent.cli.init_cmd import init_command  # noqa: E402

cli.add_command(init_command)


@cli.command("serve")
def serve_command() -> None:
    """Run the language server over stdio (LSP)."""
    from route_agent.lsp.app import main as serve_main

    serve_main()


def configure_logging() -> None:
    """Progress and warnings on stderr (stdout carries the transcript or JSON).

    Our own retry and fallback messages are INFO; stamina's bare event names add nothing to them.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("route-agent: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("route_agent").setLevel(logging.INFO)
    logging.getLogger("stamina").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "serve":  # the language server logs to the editor, never to stdio
        protect_streams()  # text from outside never drives the terminal (terminal.py)
        configure_logging()
    # `route-agent --task TEXT ...` is `route-agent route --task TEXT ...`.
    if args and args[0] not in cli.commands and args[0] not in ("-h", "--help", "--version") and any(
        a in ("--task", "--task-file") or a.startswith(("--task=", "--task-file=")) for a in args
    ):
        args.insert(0, "route")
    cli.main(args=args, prog_name="route-agent")
