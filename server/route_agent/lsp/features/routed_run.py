"""A routed run from the editor: the pipeline's event stream -> progress, diagnostics, prompts.

The pipeline (`route_agent.pipeline`) is an async, cancellable run that yields small event objects
with a `kind`; this module only translates them. Cancelling the task (progress cancel,
`route-agent.cancelRun`, shutdown) cancels the pipeline, which stops its HTTP call and kills checks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal

from lsprotocol import types

from route_agent.lsp.features import diagnostics
from route_agent.lsp.state.runs import Finding, RunRecord

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)

PHASES = {"classify": "Classifying", "lane_start": "Calling the {lane} lane", "delta": "Lane answering",
          "check": "Running checks", "checks": "Running checks", "verifier": "Verifier", "escalation": "Escalating to the strong lane",
          "decision": "Deciding"}
ESCALATE, SHOW_FINDINGS, DISMISS = "Escalate", "Show findings", "Dismiss"


def load_run_task() -> Callable[..., AsyncIterator[Any]] | None:
    try:
        from route_agent import pipeline
    except ImportError:
        return None
    run_task = getattr(pipeline, "run_task", None)
    return run_task if callable(run_task) else None


def _call(run_task: Callable[..., AsyncIterator[Any]], **available: Any) -> AsyncIterator[Any]:
    """Pass the arguments the pipeline's `run_task` accepts (its signature is its own)."""
    params = inspect.signature(run_task).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return run_task(**available)
    return run_task(**{k: v for k, v in available.items() if k in params})


def finding_from_event(item: Any) -> Finding:
    get = item.get if isinstance(item, dict) else (lambda k, d=None: getattr(item, k, d))
    line = get("line")
    raw_severity = get("severity")
    severity: Literal["error", "warning", "info"] = raw_severity if raw_severity in ("error", "warning", "info") else "error"
    return Finding(check=str(get("check") or get("name") or "check"), message=str(get("message") or ""),
                   path=get("path") or get("file"), line=int(line) if isinstance(line, int) else None,
                   column=get("column") if isinstance(get("column"), int) else None,
                   severity=severity)


async def start_run(ls: RouteAgentServer, folder_uri: str, brief: str, lane: str, anchor: tuple[str, int] | None,
                    escalate_from: RunRecord | None = None) -> RunRecord:
    run_task = load_run_task()
    if run_task is None:
        raise RuntimeError("routed runs need route_agent.pipeline, which this build does not include yet")
    folder = ls.folders[folder_uri]
    record = RunRecord(run_id=f"lsp-{uuid.uuid4().hex[:12]}", folder_uri=folder_uri, brief=brief, lane=lane, anchor=anchor,
                       escalated=escalate_from is not None)
    ls.runs.add(record)
    diagnostics.deliver(ls)
    token = f"route-agent/{record.run_id}"
    record.task = ls.spawn(_drive(ls, record, run_task, folder.root, token, escalate_from))
    return record


async def _drive(ls: RouteAgentServer, record: RunRecord, run_task: Callable[..., AsyncIterator[Any]], root: Any,
                 token: str, escalate_from: RunRecord | None) -> None:
    progress = ls.client.work_done_progress
    if progress:
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title="route-agent: routed fix", cancellable=True,
                                                                            message="Classifying", percentage=0))
        except Exception as exc:
            logger.warning("no work-done progress: %s", exc)
            progress = False
    stream = _call(run_task, task=record.brief, brief=record.brief, workspace=root, root=root, lane=record.lane,
                   requested_lane=record.lane, run_id=record.run_id,
                   previous=escalate_from.run_id if escalate_from else None)
    try:
        async for event in stream:
            kind = str(getattr(event, "kind", ""))
            if progress and kind in PHASES:
                message = PHASES[kind].format(lane=getattr(event, "lane", record.lane))
                ls.work_done_progress.report(token, types.WorkDoneProgressReport(message=message))
            if kind in ("escalation", "escalate"):
                record.lane, record.escalated = "strong", True
            elif kind == "result":
                _apply_result(record, event)
        if record.status == "running":
            record.status = "error"
            record.message = "the pipeline ended without a result"
    except asyncio.CancelledError:
        record.status = "cancelled"
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await asyncio.shield(aclose())
        raise
    except Exception as exc:
        record.status, record.message = "error", f"routed run failed: {exc}"
        logger.exception("routed run %s failed", record.run_id)
    finally:
        if progress:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=f"{record.status}: {record.message}".strip(": ")))
        diagnostics.deliver(ls)
    if record.can_escalate:
        ls.spawn(offer_escalation(ls, record))
    elif record.status == "passed":
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info,
                               message=f"route-agent: the {record.lane} lane passed verification; use 'Apply verified patch'"))


def _apply_result(record: RunRecord, event: Any) -> None:
    passed = bool(getattr(event, "passed", False))
    record.status = "passed" if passed else "failed"
    record.findings = [finding_from_event(f) for f in getattr(event, "findings", ()) or ()]
    record.failed_checks = [str(c) for c in getattr(event, "failed_checks", ()) or ()]
    record.patch = getattr(event, "patch", None) or getattr(event, "diff", None)
    record.new_texts = dict(getattr(event, "new_texts", None) or getattr(event, "files", None) or {})
    record.base_texts = dict(getattr(event, "base_texts", None) or {})
    record.lane = str(getattr(event, "lane", record.lane))
    if getattr(event, "run_id", None):
        record.message = f"run {event.run_id}"
    if record.anchor is None and record.findings and record.findings[0].path:
        record.anchor = (record.findings[0].path, (record.findings[0].line or 1) - 1)


async def offer_escalation(ls: RouteAgentServer, record: RunRecord) -> None:
    """The prompt as a message request; the same prompt stays as a diagnostic for clients that dismiss it."""
    record.escalation_offered = True
    try:
        choice = await ls.window_show_message_request_async(types.ShowMessageRequestParams(
            type=types.MessageType.Warning, message=diagnostics.escalation_message(record),
            actions=[types.MessageActionItem(title=t) for t in (ESCALATE, SHOW_FINDINGS, DISMISS)]))
    except Exception as exc:
        logger.info("escalation prompt not answered: %s", exc)
        return
    if choice is None:
        return
    if choice.title == ESCALATE and record.can_escalate:
        await start_run(ls, record.folder_uri, record.brief, "strong", record.anchor, escalate_from=record)
    elif choice.title == SHOW_FINDINGS:
        lines = [f"{f.path}:{f.line}: [{f.check}] {f.message}" for f in record.findings] or ["no findings recorded"]
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message="\n".join(lines)))
