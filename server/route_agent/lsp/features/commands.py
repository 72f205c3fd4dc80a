"""workspace/executeCommand: every command is `route-agent.*` and takes one JSON object argument."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal, TypeVar

from lsprotocol import types
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from route_agent.lsp.features import code_actions, diagnostics, hover, risk_summary, routed_run
from route_agent.lsp.policy_edit import add_path_rule_insertion, apply_insertion, new_policy_text
from route_agent.lsp.server import RouteAgentServer
from route_agent.lsp.state.folders import FolderState
from route_agent.lsp.state.runs import RunRecord
from route_agent.policy import PolicyError
from route_agent.workspace.git import WorkspaceError
from route_agent.workspace.state import user_policy_path

logger = logging.getLogger(__name__)


class RunRefusedError(JsonRpcException):
    """A routed run cannot start (unapproved policy commands, no API key, ...): a JSON-RPC server error."""

    CODE = -32001
    MESSAGE = "route-agent cannot start the run"


class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore")


ArgsT = TypeVar("ArgsT", bound=_Args)


class RouteFixArgs(_Args):
    folder: str | None = Field(default=None, validation_alias=AliasChoices("folder", "folderUri"))
    """The workspace folder's URI; optional with one folder."""
    uri: str | None = None
    path: str | None = None
    brief: str = Field(min_length=1, max_length=64_000)
    lane: str | None = "auto"
    range: dict[str, Any] | None = None
    wait: bool = False
    """Answer when the run ends (with its outcome), so that `$/cancelRequest` cancels the run."""


class RunArgs(_Args):
    run_id: str = Field(validation_alias=AliasChoices("run_id", "runId"))


class FolderArgs(_Args):
    folder: str | None = Field(default=None, validation_alias=AliasChoices("folder", "folderUri"))


class ApproveArgs(FolderArgs):
    sha256: str = Field(min_length=64, max_length=64)


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
    server.command("route-agent.routeTask")(route_fix)
    server.command("route-agent.policyCommands")(policy_commands)
    server.command("route-agent.approvePolicy")(approve_policy)
    server.command("route-agent.escalate")(escalate)
    server.command("route-agent.cancelRun")(cancel_run)
    server.command("route-agent.applyPatch")(apply_patch)
    server.command("route-agent.showPatch")(show_patch)
    server.command("route-agent.explainRisk")(explain_risk)
    server.command("route-agent.addPathRule")(add_path_rule)
    server.command("route-agent.status")(status)
    server.command("route-agent.refresh")(refresh)
    routed_run.register(server)
    risk_summary.register(server)


def _folder_uri(ls: RouteAgentServer, given: str | None) -> str:
    if given is None and len(ls.folders) == 1:
        return next(iter(ls.folders))
    if given is None or given not in ls.folders:
        known = given.rstrip("/") if given else None
        match = next((uri for uri in ls.folders if known is not None and uri.rstrip("/") == known), None)
        if match is None:
            raise JsonRpcInvalidParams.of(ValueError(f"unknown workspace folder {given}"))
        return match
    return given


def _refused(exc: routed_run.RunRefused) -> RunRefusedError:
    return RunRefusedError(f"route-agent: {exc}")


async def route_fix(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(RouteFixArgs, args)
    folder_uri = _folder_uri(ls, parsed.folder)
    line = int((parsed.range or {}).get("start", {}).get("line", 0))
    # "auto" (or no lane) defers to the `lane` setting, as the risk shown in the editor does.
    lane: Literal["auto", "fast", "strong"] = parsed.lane if parsed.lane in ("fast", "strong") else ls.settings.lane  # type: ignore[assignment]
    try:
        record = await routed_run.start_run(ls, folder_uri, parsed.brief, lane, (parsed.path, line) if parsed.path else None)
    except routed_run.RunRefused as exc:
        raise _refused(exc) from None
    if not parsed.wait or record.task is None:
        return {"run_id": record.run_id, "lane": record.lane, "risk_score": record.risk_score}
    routed_run.cancel_with_request(ls, record)
    await asyncio.wait([record.task])
    return record.as_dict()


async def escalate(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or not record.can_escalate:
        raise JsonRpcInvalidParams.of(ValueError(f"run {parsed.run_id} cannot be escalated"))
    try:
        new = await routed_run.escalate(ls, record)
    except routed_run.RunRefused as exc:
        raise _refused(exc) from None
    return {"run_id": new.run_id, "lane": new.lane}


async def cancel_run(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None:
        raise JsonRpcInvalidParams.of(ValueError(f"no run {parsed.run_id}"))
    cancelled = await ls.runs.cancel([record])
    return {"cancelled": cancelled, "status": record.status}


def policy_commands(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    """The verification commands a routed run in the folder would run, and whether they are approved."""
    parsed = _parse(FolderArgs, args)
    folder = ls.folders[_folder_uri(ls, parsed.folder)]
    try:
        status = approval_status(ls, folder)
    except (PolicyError, WorkspaceError) as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    return {"folderUri": folder.uri, **status}


def approve_policy(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    """Store the approval of the repository policy's commands, as `route-agent policy approve` does;
    only for exactly the list whose SHA-256 the client showed the user."""
    from route_agent.policy.approval import record_approval, repo_policy_needing_approval
    from route_agent.workspace.git import open_repo

    parsed = _parse(ApproveArgs, args)
    folder = ls.folders[_folder_uri(ls, parsed.folder)]
    try:
        repo = open_repo(folder.root)
        loaded = folder.policy_cache.for_workspace(repo.root, None, user_policy_path())
        status = repo_policy_needing_approval(repo.root, loaded.policy, folder.policy_cache.layer)
    except (PolicyError, WorkspaceError) as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    if status is None:
        return {"approved": True, "sha256": None, "note": "the repository policy declares no commands of its own"}
    if status.sha256 != parsed.sha256.lower():
        raise JsonRpcInvalidParams.of(ValueError(
            f"the policy's commands changed (sha256 {status.sha256}, not {parsed.sha256}); nothing was approved"))
    record_approval(repo.root, status.policy_path, status.commands)
    logger.info("policy commands of %s approved (sha256 %s)", repo.root, status.sha256)
    return {"approved": True, "sha256": status.sha256}


def approval_status(ls: RouteAgentServer, folder: Any) -> dict[str, Any]:
    from route_agent.policy.approval import commands_hash, policy_commands, repo_policy_needing_approval
    from route_agent.workspace.git import open_repo

    repo = open_repo(folder.root)
    explicit = ls.settings.policy_path
    loaded = folder.policy_cache.for_workspace(repo.root, explicit, user_policy_path())
    commands = policy_commands(loaded.policy)
    status = None if explicit is not None else repo_policy_needing_approval(repo.root, loaded.policy, folder.policy_cache.layer)
    return {"policyPath": str(status.policy_path) if status else (str(explicit) if explicit else None),
            "commands": [c.as_dict() for c in commands], "sha256": commands_hash(commands),
            "approved": status is None or status.approved,
            "trusted": status is None}


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
    if not ls.client.apply_edit:
        return await _apply_on_disk(ls, record)
    result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="route-agent: apply verified patch"))
    return {"applied": bool(result.applied), "reason": result.failure_reason}


async def _apply_on_disk(ls: RouteAgentServer, record: RunRecord) -> dict[str, Any]:
    """For a client without workspace/applyEdit: `route-agent apply`'s three-way write of the stored run."""
    from route_agent.workspace.git import open_repo
    from route_agent.workspace.worktree import apply_to_user_tree

    folder = ls.folders[record.folder_uri]
    try:
        result = await asyncio.to_thread(lambda: apply_to_user_tree(open_repo(folder.root), record.run_id))
    except WorkspaceError as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    ls.window_show_message(types.ShowMessageParams(
        type=types.MessageType.Info if result.applied else types.MessageType.Warning, message=f"route-agent: {result.message}"))
    ls.schedule_refresh(folder, 0.0)
    return {"applied": result.applied, "conflicts": list(result.conflicts), "reason": result.message}


def show_patch(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = _parse(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or not record.patch:
        raise JsonRpcInvalidParams.of(ValueError(f"run {parsed.run_id} has no patch"))
    from pygls import uris

    from route_agent.workspace.state import make_private, state_dir

    target = state_dir() / "patches" / f"{record.run_id}.diff"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(record.patch, "utf-8")
    make_private(target)
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
    """For clients that cannot take the code action's edit: edit via applyEdit, or write the file.

    The file edited is the policy in force: the `policyPath` setting when set, else the repository's.
    """
    parsed = _parse(PathRuleArgs, args)
    folder = ls.folders.get(parsed.folder)
    if folder is None:
        raise JsonRpcInvalidParams.of(ValueError(f"unknown workspace folder {parsed.folder}"))
    explicit = ls.settings.policy_path
    target = code_actions.policy_target(folder, explicit)
    if explicit is not None and not target.is_file():
        return _path_rule_refused(ls, f"the policyPath setting names {target}, which does not exist; create it or clear the "
                                      "setting, then add the rule again")
    try:
        edit = code_actions.add_path_rule_edit(ls, parsed.folder, parsed.signal, parsed.glob)
        if edit is not None and ls.client.apply_edit:
            result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="route-agent: add path rule"))
            return {"applied": bool(result.applied), "path": str(target)}
        new_text = new_policy_text(parsed.signal, parsed.glob)
        if target.is_file():
            text = target.read_text("utf-8")
            insertion = add_path_rule_insertion(text, parsed.signal, parsed.glob)
            if insertion is None:
                return _path_rule_refused(ls, f"{target} already lists {parsed.glob!r} under paths.{parsed.signal}, or its "
                                              f"paths.{parsed.signal} is not a list route-agent can edit; edit the file by hand")
            new_text = apply_insertion(text, insertion)
        _write_policy(folder, target, new_text)
    except (OSError, ValueError, WorkspaceError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _path_rule_refused(ls, f"cannot edit {target}: {reason}")
    ls.schedule_refresh(folder, 0.0)
    return {"applied": True, "path": str(target)}


def _write_policy(folder: FolderState, target: Path, text: str) -> None:
    from route_agent.workspace.safefs import write_file

    root = folder.snapshot.repo.root if folder.snapshot else folder.root
    try:
        rel = target.relative_to(root).as_posix()
    except ValueError:
        target.write_text(text, "utf-8")  # the user's own policyPath, outside the repository
        return
    # Never through a link the repository committed in the policy's place (issue 12, item 1).
    write_file(root, rel, text.encode("utf-8"))


def _path_rule_refused(ls: RouteAgentServer, why: str) -> dict[str, Any]:
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"route-agent: path rule not added: {why}"))
    return {"applied": False, "reason": why}


def status(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    folders = []
    for folder in ls.folders.values():
        snap = folder.snapshot
        folders.append({"uri": folder.uri, "refreshing": folder.refreshing, "error": folder.error,
                        "generation": snap.generation if snap else 0,
                        "risk_score": snap.decision.risk_score if snap else None, "lane": snap.decision.lane if snap else None,
                        "paths": list(snap.change_set.paths) if snap else []})
    runs = [r.as_dict() for r in ls.runs.all()]
    return {"folders": folders, "runs": runs, "documents": len(ls.documents),
            "diagnostics": {uri: len(d) for uri, d in ls.diagnostic_cache.items()}}


def refresh(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    ls.schedule_all(0.0)
    diagnostics.deliver(ls)
    return {"scheduled": len(ls.folders)}
