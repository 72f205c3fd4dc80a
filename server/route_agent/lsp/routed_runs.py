"""A routed run from the editor: a `RunRequest` from the server's state, and the pipeline's events
turned into work-done progress, diagnostics and the escalation prompt.

The request is built the way `route-agent route` builds it (cli/main.py, cli/run.py): the workspace
folder's repository, the effective policy (the `policyPath` setting, else the repository's file,
layered over the user's and the default), the change set with the open buffers counting instead of
the files on disk, the decision recomputed for the brief, a ledger (`ROUTE_AGENT_LEDGER` in the
server's environment, else the state directory's), and the server's own environment, so API keys set
where the editor started the server reach the lane client.

Trust: a repository policy that declares verification commands runs them only once the user approved
that exact list (policy/approval.py, the same SHA-256 store as `route-agent policy approve`; the
editor approves with the `route-agent.approvePolicy` command). A `policyPath` from the editor's
settings counts as given by the user, like `--policy`, and so do the user's config and the default.

The editor's escalation UX. The CLI lets the pipeline escalate on its own (`routing.escalate_on`).
In the editor the user decides instead: a run whose lane is fast is started with a copy of the
policy whose `routing.max_attempts` is 1, so the pipeline stops after the fast attempt. When that
attempt fails (checks, tamper, scope, a rejected patch, or doubts that `escalate_on` counts), the
user is asked with `window/showMessageRequest` "Fast lane failed N checks. Escalate to strong
lane?" (Escalate / Show findings / Dismiss), and the same prompt stays as a `route-agent/verify`
diagnostic with an `Escalate to strong lane` code action for clients that dismiss messages.
Escalating starts a strong run (a new run id) whose first prompt carries the fast attempt's findings
(`RunRequest.carry_findings`), as the pipeline's own escalation does. A run classified strong is
started with the policy as it is. After a pass the patch is offered as `Apply verified patch` (a
`workspace/applyEdit` that refuses files changed since the run) and `Show patch`.

Cancelling, by work-done progress cancel, `$/cancelRequest` on a `route-agent.routeFix` sent with
`"wait": true`, `route-agent.cancelRun`, or shutdown, cancels the task iterating the pipeline: the
pipeline then closes the HTTP stream, kills the check processes and removes its worktree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from lsprotocol import types

from route_agent.ledger import LedgerError, open_ledger
from route_agent.lsp.diagnostic_items import escalation_message, plural
from route_agent.lsp.state.runs import Finding, RunRecord, RunStatus
from route_agent.pipeline import events as ev
from route_agent.pipeline.run import RunRequest, run_task, unsandboxed_refusal
from route_agent.policy import PolicyCache, PolicyError
from route_agent.policy.approval import repo_endpoint_overrides, repo_policy_needing_approval, unsandboxed_opt_in_trusted
from route_agent.policy.keys import missing_key
from route_agent.policy.models import ModelSpec, Policy
from route_agent.routing import LaneRefused, Router
from route_agent.verify.findings import Finding as PipelineFinding
from route_agent.workspace.git import WorkspaceError, collect_change_set, open_repo
from route_agent.workspace.state import latest_test_failures, user_policy_path
from route_agent.workspace.worktree import run_path

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)

ESCALATE, SHOW_FINDINGS, DISMISS = "Escalate", "Show findings", "Dismiss"
RequestedLane = Literal["auto", "fast", "strong"]
FAILED_KINDS = ("tamper", "scope", "patch", "integrity")
"""Finding kinds that fail an attempt by themselves (besides failed check runs)."""
STATUS: dict[str, RunStatus] = {"pass": "passed", "fail": "failed", "error": "error", "cancelled": "cancelled"}


class RunRefused(Exception):
    """The run cannot start; the message says what the user can do about it."""



# --- the request -------------------------------------------------------------------------------


def attempt_policy(policy: Policy, lane: str) -> Policy:
    """The policy a run uses: one attempt when it starts fast (the editor asks before escalating)."""
    if lane != "fast" or policy.routing.max_attempts == 1:
        return policy
    return policy.model_copy(update={"routing": policy.routing.model_copy(update={"max_attempts": 1})})


@dataclass(frozen=True)
class RequestInputs:
    root: Path
    buffers: Mapping[str, str]
    policy_cache: PolicyCache
    explicit_policy: Path | None
    brief: str
    lane: RequestedLane
    run_id: str
    environ: Mapping[str, str]
    carry: Sequence[PipelineFinding] = ()
    ledger_location: str | None = None
    trusted: bool = True
    sandbox: str | None = None
    provider_base_urls: tuple[tuple[str, str], ...] = ()
    task_id: str | None = None
    first_attempt_no: int = 1


def with_provider_urls(policy: Policy, urls: tuple[tuple[str, str], ...]) -> Policy:
    """The user's per-provider endpoints for models whose entry names none (never the repository's)."""
    if not urls:
        return policy
    table = dict(urls)

    def fill(spec: ModelSpec | None) -> ModelSpec | None:
        if spec is None:
            return None
        update: dict[str, object] = {}
        if spec.base_url is None and spec.provider in table:
            update["base_url"] = table[spec.provider]
        if spec.fallback is not None:
            update["fallback"] = fill(spec.fallback)
        return spec.model_copy(update=update) if update else spec

    models = policy.models
    return policy.model_copy(update={"models": models.model_copy(update={
        "fast": fill(models.fast), "strong": fill(models.strong), "verifier": fill(models.verifier)})})


def build_request(inputs: RequestInputs) -> RunRequest:
    """Git, policy, approval and scoring for one run; synchronous (call it in a worker thread).

    Raises RunRefused with a message for the user. The caller closes `request.ledger`.
    """
    if not inputs.trusted:
        raise RunRefused("this workspace is not trusted: a routed run executes the repository's tests and checks, so "
                         "route-agent runs none of them in restricted mode; trust the workspace to route fixes")
    try:
        repo = open_repo(inputs.root)
        loaded = inputs.policy_cache.for_workspace(repo.root, inputs.explicit_policy, user_policy_path())
        if inputs.explicit_policy is None:
            overrides = repo_endpoint_overrides(repo.root, inputs.policy_cache.layer)
            if overrides is not None:
                raise RunRefused(f"the repository policy {overrides[0]} sets {', '.join(overrides[1])}: a repository cannot choose "
                                 "where your API keys go (only endpoints on this machine); nothing was run")
            status = repo_policy_needing_approval(repo.root, loaded.policy, inputs.policy_cache.layer)
            if status is not None and not status.approved:
                changed = "changed since you approved them" if status.previous is not None else "you have not approved"
                raise RunRefused(
                    f"the repository policy {status.policy_path} declares {len(status.commands)} verification command(s) that "
                    f"{changed} (sha256 {status.sha256[:12]}…); nothing was run. Approve them with "
                    f"'route-agent policy approve --workspace {repo.root}' or the editor's approve command")
        change_set = collect_change_set(repo, buffers=dict(inputs.buffers))
    except PolicyError as exc:
        raise RunRefused(f"policy error: {exc.issues[0] if exc.issues else exc}") from None
    except WorkspaceError as exc:
        raise RunRefused(str(exc)) from None
    from route_agent.pipeline.economics import read_economics

    router = Router(loaded.policy, repo=str(repo.root), economics=read_economics(loaded.policy, inputs.ledger_location, change_set))
    try:
        decision = router.classify(change_set, inputs.brief, latest_test_failures(repo.root), requested_lane=inputs.lane)
    except LaneRefused as exc:
        raise RunRefused(str(exc)) from None
    spec = getattr(loaded.policy.models, decision.lane)
    unset = missing_key(spec, inputs.environ)
    if unset is not None:
        raise RunRefused(f"the {decision.lane} lane ({spec.model}) needs {unset}; set it in the environment the editor starts "
                         "route-agent serve with, then restart the server")
    refusal = unsandboxed_refusal(repo.root, loaded.policy, inputs.sandbox)
    if refusal is not None:
        raise RunRefused(refusal + " (or the editor's Allow Unsandboxed Checks command)")
    try:
        ledger = open_ledger(inputs.ledger_location)
    except LedgerError as exc:
        raise RunRefused(str(exc)) from None
    policy = with_provider_urls(attempt_policy(loaded.policy, decision.lane), inputs.provider_base_urls)
    return RunRequest(repo=repo, policy=policy, router=router, decision=decision,
                      brief=inputs.brief, change_set=change_set, ledger=ledger, environ=dict(inputs.environ),
                      run_id=inputs.run_id, carry_findings=tuple(inputs.carry), sandbox=inputs.sandbox,
                      task_id=inputs.task_id, first_attempt_no=inputs.first_attempt_no, buffers=dict(inputs.buffers),
                      allow_unsandboxed=unsandboxed_opt_in_trusted(repo.root, loaded.sources, inputs.policy_cache.layer))


def load_patch_texts(run_id: str) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(base, patched) text per path of a stored run; empty when a file is not UTF-8 text (the
    editor cannot carry it; `route-agent apply` can)."""
    folder = run_path(run_id)
    meta = json.loads((folder / "meta.json").read_text("utf-8"))
    base: dict[str, str | None] = {}
    after: dict[str, str | None] = {}
    try:
        for path, entry in meta["files"].items():
            n = entry["n"]
            base[path] = (folder / "files" / f"{n}.base").read_bytes().decode("utf-8") if entry["base"] else None
            after[path] = (folder / "files" / f"{n}.after").read_bytes().decode("utf-8") if entry["after"] else None
    except UnicodeDecodeError:
        return {}, {}
    return base, after


def failed_checks_of(event: ev.AttemptFinished) -> list[str]:
    """What failed in an attempt: check runs that did not pass, then tamper/scope/patch findings."""
    names = [str(c.get("name")) for c in event.attempt.get("checks") or () if c.get("status") != "pass"]
    for finding in event.findings:
        if finding.kind in FAILED_KINDS and finding.check not in names:
            names.append(finding.check)
    return names


# --- starting and driving a run ----------------------------------------------------------------


async def start_run(ls: RouteAgentServer, folder_uri: str, brief: str, lane: RequestedLane, anchor: tuple[str, int] | None,
                    escalate_from: RunRecord | None = None) -> RunRecord:
    """Build the request (git in a worker thread), then run it in the background. RunRefused when it cannot start."""
    folder = ls.folders.get(folder_uri)
    if folder is None:
        raise RunRefused(f"unknown workspace folder {folder_uri}")
    run_id = f"lsp-{uuid.uuid4().hex[:12]}"
    inputs = RequestInputs(
        root=folder.root, buffers=ls.buffers_for(folder), policy_cache=folder.policy_cache,
        explicit_policy=ls.settings.policy_path, brief=brief, lane=lane, run_id=run_id, environ=dict(os.environ),
        carry=escalate_from.carried if escalate_from else (), ledger_location=os.environ.get("ROUTE_AGENT_LEDGER") or None,
        trusted=ls.settings.workspace_trusted, sandbox=ls.settings.sandbox, provider_base_urls=ls.settings.provider_base_urls,
        # The user's escalation continues the same task: one task in the ledger, attempts numbered on.
        task_id=(escalate_from.task_id or escalate_from.run_id) if escalate_from else None,
        first_attempt_no=2 if escalate_from else 1,
    )
    request = await asyncio.to_thread(build_request, inputs)
    if escalate_from is not None and request.ledger is not None:
        reason = "user: " + (",".join(escalate_from.reasons) or "failed")
        await asyncio.to_thread(request.ledger.mark_escalated, escalate_from.run_id, 1, reason)
    record = RunRecord(run_id=run_id, task_id=request.task_id, folder_uri=folder_uri, brief=brief, lane=request.decision.lane,
                       anchor=anchor, origin=(escalate_from.origin if escalate_from else None) or (anchor[0] if anchor else None),
                       escalated=escalate_from is not None, escalated_from=escalate_from.run_id if escalate_from else None,
                       risk_score=request.decision.risk_score, progress_token=f"route-agent/{run_id}")
    if escalate_from is not None:
        escalate_from.escalated = True
    ls.runs.add(record)
    ls.deliver_diagnostics()
    record.task = ls.spawn(_drive(ls, record, request))
    return record


async def _drive(ls: RouteAgentServer, record: RunRecord, request: RunRequest) -> None:
    progress = await _create_progress(ls, record)
    try:
        # run_task is an async generator: closing it runs its cleanup even when cancelled between events.
        events = cast(AsyncGenerator[ev.Event, None], run_task(request))
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                await _on_event(ls, record, event, progress)
        if record.status == "running":
            record.status, record.message = "error", "the pipeline ended without a result"
    except asyncio.CancelledError:
        record.status, record.message = "cancelled", "cancelled; nothing was applied"
        if not ls.shutting_down:
            ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=ending_message(record)))
        raise
    except Exception as exc:
        record.status, record.message = "error", f"routed run failed: {exc}"
        logger.exception("routed run %s failed", record.run_id)
    finally:
        if request.ledger is not None:
            with contextlib.suppress(Exception):
                request.ledger.close()
        if progress and record.progress_token:
            ls.work_done_progress.end(record.progress_token, types.WorkDoneProgressEnd(message=f"{record.status}: {record.message}"))
        ls.deliver_diagnostics()
    # Every run ends with a message saying how it ended; a failed fast run's is the escalation prompt.
    if record.can_escalate:
        ls.spawn(offer_escalation(ls, record))
        return
    kind = {"passed": types.MessageType.Info, "failed": types.MessageType.Error}.get(record.status, types.MessageType.Warning)
    ls.window_show_message(types.ShowMessageParams(type=kind, message=ending_message(record)))


def ending_message(record: RunRecord) -> str:
    """How a run ended, in one message: passed, failed and why, cancelled, or the error."""
    if record.status == "passed":
        return f"route-agent: the {record.lane} lane's patch passed verification; use 'Apply verified patch' or 'Show patch'"
    if record.status == "cancelled":
        return "route-agent: the routed fix was cancelled; nothing was applied"
    if record.status == "failed":
        checks = record.failed_checks or sorted({f.check for f in record.findings})
        why = f"failed {plural(len(checks), 'check')}: {', '.join(checks)}" if checks else "failed verification"
        if record.reasons:
            why += f" ({', '.join(record.reasons)})"
        where = " See the route-agent/verify diagnostics." if record.findings else ""
        return f"route-agent: the {record.lane} lane's patch {why}; nothing was applied.{where}"
    return f"route-agent: {record.message or 'the routed fix ended without a result'}"


async def _create_progress(ls: RouteAgentServer, record: RunRecord) -> bool:
    if not ls.client.work_done_progress or record.progress_token is None:
        return False
    try:
        await ls.work_done_progress.create_async(record.progress_token)
    except Exception as exc:
        logger.warning("no work-done progress for run %s: %s", record.run_id, exc)
        return False
    return True


def _report(ls: RouteAgentServer, record: RunRecord, progress: bool, message: str) -> None:
    """A step as work-done progress; to a client without it, as a `window/logMessage`."""
    if progress and record.progress_token:
        ls.work_done_progress.report(record.progress_token, types.WorkDoneProgressReport(message=message))
    elif not progress:
        logger.info("run %s: %s", record.run_id, message)


def _announce(ls: RouteAgentServer, record: RunRecord, progress: bool, message: str) -> None:
    """A step that matters (start, lane calls, escalation): progress, else a `window/showMessage` (Info)."""
    if progress and record.progress_token:
        ls.work_done_progress.report(record.progress_token, types.WorkDoneProgressReport(message=message))
    elif not progress:
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=f"route-agent: {message}"))


LANE_PROGRESS_LOG_S = 5.0
"""Without work-done progress, lane streaming is logged at most this often (it comes per chunk)."""


async def _on_event(ls: RouteAgentServer, record: RunRecord, event: ev.Event, progress: bool) -> None:
    if isinstance(event, ev.Classified):
        record.lane, record.risk_score = event.decision.lane, event.decision.risk_score
        if progress and record.progress_token:
            ls.work_done_progress.begin(record.progress_token, types.WorkDoneProgressBegin(
                title="route-agent: routed fix", cancellable=True,
                message=f"risk {event.decision.risk_score} -> {event.decision.lane} lane"))
        elif not progress:
            ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=(
                f"route-agent: routed fix started: risk {event.decision.risk_score} -> {event.decision.lane} lane "
                f"(cancel with the route-agent.cancelRun command, run_id {record.run_id})")))
    elif isinstance(event, ev.AttemptStarted):
        record.lane = event.lane
        _announce(ls, record, progress, f"calling the {event.lane} lane ({event.model})")
    elif isinstance(event, ev.AgentStep):
        _report(ls, record, progress, f"{event.lane} lane {event.line}")
    elif isinstance(event, ev.AgentFinished):
        _report(ls, record, progress, f"{event.lane} lane agent ({event.executor}): {event.status}")
    elif isinstance(event, ev.LaneProgress):
        now = time.monotonic()
        if progress or now - record.progress_logged_at >= LANE_PROGRESS_LOG_S:
            record.progress_logged_at = now
            _report(ls, record, progress, f"{event.lane} lane answering ({event.chars} characters)")
    elif isinstance(event, ev.WorktreePrepared):
        _report(ls, record, progress, f"prepared a worktree for this repository, once: {event.seconds:.1f} s")
    elif isinstance(event, ev.PatchRejected):
        _report(ls, record, progress, f"patch rejected: {event.reason}")
    elif isinstance(event, ev.ChecksStarted):
        if event.sandboxed:
            _report(ls, record, progress, f"running checks: {', '.join(event.names) or '(none)'}")
        else:  # said on every such run, not only in a log
            _report(ls, record, progress, f"running checks NOT SANDBOXED: {', '.join(event.names)}")
            ls.window_show_message(types.ShowMessageParams(
                type=types.MessageType.Warning,
                message=f"route-agent: run {record.run_id}: checks {event.note.replace('NOT sandboxed', 'NOT SANDBOXED', 1)}; "
                        "the repository's code runs as you"))
    elif isinstance(event, ev.CheckFinished):
        _report(ls, record, progress, f"check {event.name}: {event.status} ({event.duration_s:.1f} s)")
    elif isinstance(event, ev.VerifierDone):
        _report(ls, record, progress, f"verifier: confidence {event.confidence:.2f} ({event.verdict})")
    elif isinstance(event, ev.AttemptFinished):
        record.findings = [Finding.from_pipeline(f) for f in event.findings]
        record.carried = event.findings
        record.reasons = event.reasons
        record.failed_checks = failed_checks_of(event)
        if record.anchor is None:
            located = next((f for f in record.findings if f.path), None)
            if located is not None:
                record.anchor = (located.path or "", max(0, (located.line or 1) - 1))
            elif record.origin is not None:
                record.anchor = (record.origin, 0)
    elif isinstance(event, ev.Escalating):
        record.lane = event.to_lane
        _announce(ls, record, progress, f"escalating to the {event.to_lane} lane ({', '.join(event.reasons)})")
    elif isinstance(event, ev.RunFinished):
        record.cost_usd, record.message = event.cost_usd, event.message
        if event.attempts:
            record.lane = str(event.attempts[-1].get("lane", record.lane))
        if event.result == "pass" and event.patch:
            record.patch = event.patch
            try:
                record.base_texts, record.new_texts = await asyncio.to_thread(load_patch_texts, event.run_id)
            except (OSError, ValueError, KeyError) as exc:
                logger.warning("run %s: cannot read the stored patch: %s", event.run_id, exc)
            if not record.new_texts:
                record.message += f"; apply it with: route-agent apply {event.run_id}"
        record.status = STATUS[event.result]


# --- escalation and cancellation ---------------------------------------------------------------


async def escalate(ls: RouteAgentServer, record: RunRecord) -> RunRecord:
    """A strong run for a failed fast run, its findings carried into the prompt."""
    return await start_run(ls, record.folder_uri, record.brief, "strong", record.anchor, escalate_from=record)


def findings_text(record: RunRecord) -> str:
    lines = [f"{f.path}:{f.line}: [{f.check}] {f.message}" if f.path else f"[{f.check}] {f.message}" for f in record.findings[:30]]
    why = f"Fast lane attempt failed ({', '.join(record.reasons)}):" if record.reasons else "Fast lane attempt failed:"
    return "\n".join([why, *(lines or ["no findings recorded"])])


async def offer_escalation(ls: RouteAgentServer, record: RunRecord) -> None:
    """The prompt as a message request; the same prompt stays as a diagnostic for clients that dismiss it."""
    record.escalation_offered = True
    try:
        choice = await ls.window_show_message_request_async(types.ShowMessageRequestParams(
            type=types.MessageType.Warning, message=escalation_message(record),
            actions=[types.MessageActionItem(title=t) for t in (ESCALATE, SHOW_FINDINGS, DISMISS)]))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.info("escalation prompt not answered: %s", exc)
        return
    if choice is None or choice.title == DISMISS:
        return
    if choice.title == ESCALATE and record.can_escalate:
        try:
            await escalate(ls, record)
        except RunRefused as exc:
            ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"route-agent: {exc}"))
    elif choice.title == SHOW_FINDINGS:
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=findings_text(record)))


def cancel(record: RunRecord) -> bool:
    return bool(record.task is not None and not record.task.done() and record.task.cancel())


def cancel_with_request(ls: RouteAgentServer, record: RunRecord) -> None:
    """`$/cancelRequest` for the request being handled now also cancels `record`'s run.

    pygls cancels the request's future only (the command handler runs as another task), so the
    run is linked to that future here.
    """
    futures: dict[Any, Future[Any]] = getattr(ls.protocol, "_request_futures", {})
    future = futures.get(ls.protocol.msg_id)
    if future is None:
        return

    def on_done(done: Future[Any]) -> None:
        if done.cancelled() and cancel(record):
            logger.info("run %s cancelled with its request", record.run_id)

    future.add_done_callback(on_done)
