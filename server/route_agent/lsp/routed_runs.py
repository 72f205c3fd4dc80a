"""A routed run from the editor: a `RunRequest` from the server's state, and the pipeline's events
turned into work-done progress, diagnostics and the escalation prompt.

The request is prepared by `pipeline.prepare.prepare_run`, the same function `route-agent route`
calls, from `run_settings`: the workspace folder's repository, the `policyPath` setting (else the
repository's policy, layered over the user's and the default), the open buffers counting instead of
the files on disk, a ledger (`ROUTE_AGENT_LEDGER` in the server's environment, else the state
directory's), and the server's own environment, so API keys set where the editor started the server
reach the lane client. Its refusals (untrusted workspace, unapproved repository commands, a missing
key, ...) are typed; the commands answer them with a JSON-RPC error carrying the message.

The editor's escalation UX. The CLI lets the pipeline escalate on its own (`routing.escalate_on`).
In the editor the user decides instead: a run whose lane is fast is started with a copy of the
policy whose `routing.max_attempts` is 1 (`RunSettings.ask_before_escalating`), so the pipeline
stops after the fast attempt. When that
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
from collections.abc import AsyncGenerator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, cast

from lsprotocol import types

from route_agent.lsp.diagnostic_items import escalation_message, plural
from route_agent.lsp.pygls_private import request_future
from route_agent.lsp.state.folders import FolderState
from route_agent.lsp.state.runs import RunRecord, RunStatus
from route_agent.pipeline import events as ev
from route_agent.pipeline.prepare import Refusal, RunRefused, RunSettings, prepare_run
from route_agent.pipeline.run import RunRequest, run_task
from route_agent.workspace.worktree import run_path

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)

ESCALATE, SHOW_FINDINGS, DISMISS = "Escalate", "Show findings", "Dismiss"
RequestedLane = Literal["auto", "fast", "strong"]
STATUS: dict[str, RunStatus] = {"pass": "passed", "fail": "failed", "error": "error", "cancelled": "cancelled"}


def run_settings(ls: RouteAgentServer, folder: FolderState, brief: str, lane: RequestedLane, run_id: str,
                 escalate_from: RunRecord | None = None) -> RunSettings:
    """The editor's side of `pipeline.prepare`: the folder's repository and open buffers, the server's
    settings for the folder and its environment (so API keys set where the editor started the server
    reach the lanes)."""
    settings = ls.settings_for(folder)
    return RunSettings(
        root=folder.root, brief=brief, lane=lane, explicit_policy=settings.policy_path, buffers=ls.buffers_for(folder),
        environ=dict(os.environ), ledger_location=os.environ.get("ROUTE_AGENT_LEDGER") or None, sandbox=settings.sandbox,
        trusted=settings.workspace_trusted, provider_base_urls=settings.provider_base_urls, ask_before_escalating=True,
        run_id=run_id, carry=escalate_from.findings if escalate_from else (), policy_cache=folder.policy_cache,
        # The user's escalation continues the same task: one task in the ledger, attempts numbered on.
        task_id=(escalate_from.task_id or escalate_from.run_id) if escalate_from else None,
        first_attempt_no=2 if escalate_from else 1,
    )


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


# --- starting and driving a run ----------------------------------------------------------------


async def start_run(ls: RouteAgentServer, folder_uri: str, brief: str, lane: RequestedLane, anchor: tuple[str, int] | None,
                    escalate_from: RunRecord | None = None) -> RunRecord:
    """Build the request (git in a worker thread), then run it in the background. RunRefused when it cannot start."""
    folder = ls.folders.get(folder_uri)
    if folder is None:
        raise RunRefused(Refusal("workspace", f"unknown workspace folder {folder_uri}"))
    run_id = f"lsp-{uuid.uuid4().hex[:12]}"
    request = (await asyncio.to_thread(prepare_run, run_settings(ls, folder, brief, lane, run_id, escalate_from))).request
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


async def _on_event(ls: RouteAgentServer, record: RunRecord, event: ev.Event, progress: bool) -> None:  # noqa: PLR0912, PLR0915 (one branch per pipeline event)
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
        record.findings = event.findings
        record.reasons = event.reasons
        record.failed_checks = list(event.failed)
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
    future = request_future(ls.protocol, ls.protocol.msg_id)
    if future is None:
        return

    def on_done(done: Future[Any]) -> None:
        if done.cancelled() and cancel(record):
            logger.info("run %s cancelled with its request", record.run_id)

    future.add_done_callback(on_done)
