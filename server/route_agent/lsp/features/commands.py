"""workspace/executeCommand: every command is `route-agent.*` and takes one JSON object argument."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from lsprotocol import types
from pydantic import BaseModel, ConfigDict, ValidationError
from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.features import code_actions, diagnostics, hover, routed_run
from route_agent.lsp.policy_edit import add_path_rule_insertion, apply_insertion, new_policy_text
from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)


class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore")


ArgsT = TypeVar("ArgsT", bound=_Args)


class RouteFixArgs(_Args):
    folder: str
    uri: str | None = None
    path: str | None = None
    brief: str
    lane: str = "auto"
    range: dict[str, Any] | None = None


class RunArgs(_Args):
    run_id: str


class FolderPathArgs(_Args):
    folder: str | None = None
    path: str | None = None


class PathRuleArgs(_Args):
    folder: str
    signal: str
    glob: str


def _parse(model: type[ArgsT], args: tuple[Any, ...]) -> ArgsT:
    raw = args[0] if args else {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None


def register(server: RouteAgentServer) -> None:
    server.command("route-agent.routeFix")(route_fix)
    server.command("route-agent.escalate")(escalate)
    server.command("route-agent.cancelRun")(cancel_run)
    server.command("route-agent.applyPatch")(apply_patch)
    server.command("route-agent.showPatch")(show_patch)
    server.command("route-agent.explainRisk")(explain_risk)
    server.command("route-agent.addPathRule")(add_path_rule)
    server.command("route-agent.status")(status)
    server.command("route-agent.refresh")(refresh)


async def route_fix(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(RouteFixArgs, args)
    if parsed.folder not in ls.folders:
        raise JsonRpcInvalidParams.of(ValueError(f"unknown workspace folder {parsed.folder}"))
    line = int((parsed.range or {}).get("start", {}).get("line", 0))
    lane = parsed.lane if parsed.lane in ("auto", "fast", "strong") else "auto"
    record = await routed_run.start_run(ls, parsed.folder, parsed.brief, lane, (parsed.path, line) if parsed.path else None)
    return {"run_id": record.run_id}


async def escalate(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or not record.can_escalate:
        raise JsonRpcInvalidParams.of(ValueError(f"run {parsed.run_id} cannot be escalated"))
    new = await routed_run.start_run(ls, record.folder_uri, record.brief, "strong", record.anchor, escalate_from=record)
    return {"run_id": new.run_id}


def cancel_run(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    cancelled = bool(record and record.task and not record.task.done() and record.task.cancel())
    return {"cancelled": cancelled}


async def apply_patch(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or not record.can_apply:
        raise JsonRpcInvalidParams.of(ValueError(f"run {parsed.run_id} has no verified patch"))
    edit, conflicts = code_actions.patch_edit(ls, record)
    if conflicts or edit is None:
        message = "route-agent: not applied; these files changed since the run: " + ", ".join(conflicts)
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=message))
        return {"applied": False, "conflicts": conflicts}
    result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="route-agent: apply verified patch"))
    return {"applied": bool(result.applied), "reason": result.failure_reason}


def show_patch(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or not record.patch:
        raise JsonRpcInvalidParams.of(ValueError(f"run {parsed.run_id} has no patch"))
    from pygls import uris

    from route_agent.workspace.state import state_dir

    target = state_dir() / "patches" / f"{record.run_id}.diff"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(record.patch, "utf-8")
    uri = uris.from_fs_path(str(target)) or ""
    if ls.client.show_document:
        ls.window_show_document(types.ShowDocumentParams(uri=uri, take_focus=True))
    return {"uri": uri, "patch": record.patch}


def explain_risk(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(FolderPathArgs, args)
    folder = ls.folders.get(parsed.folder or "") or next(iter(ls.folders.values()), None)
    if folder is None or folder.snapshot is None:
        raise JsonRpcInvalidParams.of(ValueError("no risk has been computed for this folder yet"))
    decision = folder.snapshot.decision
    rel = parsed.path if parsed.path in decision.signals.paths else (decision.signals.paths[0] if decision.signals.paths else "")
    text = hover.compute_hover(decision, rel, -1, folder.refreshing) if rel else None
    text = text or f"Risk score: {decision.risk_score} -> {decision.lane} lane (no changes)"
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=text.replace("**", "").replace("`", "")))
    return {"markdown": text, **decision.as_dict()}


async def add_path_rule(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    """For clients that cannot take the code action's edit: edit via applyEdit, or write a new file."""
    parsed = _parse(PathRuleArgs, args)
    folder = ls.folders.get(parsed.folder)
    if folder is None:
        raise JsonRpcInvalidParams.of(ValueError(f"unknown workspace folder {parsed.folder}"))
    edit = code_actions.add_path_rule_edit(ls, parsed.folder, parsed.signal, parsed.glob)
    if edit is not None and ls.client.apply_edit:
        result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="route-agent: add path rule"))
        return {"applied": bool(result.applied)}
    target = code_actions.policy_target(folder)
    if target.is_file():
        text = target.read_text("utf-8")
        insertion = add_path_rule_insertion(text, parsed.signal, parsed.glob)
        if insertion is not None:
            target.write_text(apply_insertion(text, insertion), "utf-8")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(new_policy_text(parsed.signal, parsed.glob), "utf-8")
    ls.schedule_refresh(folder, 0.0)
    return {"applied": True, "path": str(target)}


def status(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    folders = []
    for folder in ls.folders.values():
        snap = folder.snapshot
        folders.append({"uri": folder.uri, "refreshing": folder.refreshing, "error": folder.error,
                        "generation": snap.generation if snap else 0,
                        "risk_score": snap.decision.risk_score if snap else None, "lane": snap.decision.lane if snap else None,
                        "paths": list(snap.change_set.paths) if snap else []})
    runs = [{"run_id": r.run_id, "status": r.status, "lane": r.lane, "escalated": r.escalated} for r in ls.runs.all()]
    return {"folders": folders, "runs": runs, "documents": len(ls.documents),
            "diagnostics": {uri: len(d) for uri, d in ls.diagnostic_cache.items()}}


def refresh(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    ls.schedule_all(0.0)
    diagnostics.deliver(ls)
    return {"scheduled": len(ls.folders)}
