"""The risk summary for status bars and panels: `route-agent.riskSummary`, the `routeAgent/riskChanged`
notification (sent after each refresh to clients that ask for it with the `riskNotifications`
option), and `route-agent.ledgerReport` (the ledger's per-lane figures as JSON).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pygls.exceptions import JsonRpcInvalidParams

from route_agent.ledger import LedgerError, open_ledger
from route_agent.ledger.report import report_json
from route_agent.lsp.server import RouteAgentServer
from route_agent.lsp.state.folders import FolderState

NOTIFICATION = "routeAgent/riskChanged"


class _SummaryArgs(BaseModel):
    model_config = ConfigDict(extra="ignore")
    uri: str | None = Field(default=None, validation_alias=AliasChoices("uri", "folderUri", "folder"))


def summary(ls: RouteAgentServer, folder: FolderState) -> dict[str, Any]:
    """The folder's latest risk, as the contract in client-vscode/README.md describes it."""
    snap = folder.snapshot
    decision = snap.decision if snap else None
    approved: bool | None = None
    if snap is not None and ls.settings.policy_path is None:
        from route_agent.policy.approval import repo_policy_needing_approval

        try:
            # The snapshot's policy is the effective one; the cache re-reads the file only when it changed.
            status = repo_policy_needing_approval(snap.repo.root, snap.policy.policy, folder.policy_cache.layer)
            approved = None if status is None else status.approved
        except Exception:  # a broken policy is reported as the folder's error already
            approved = None
    return {
        "folderUri": folder.uri,
        "riskScore": decision.risk_score if decision else None,
        "lane": decision.lane if decision else None,
        "alwaysStrong": [str(hit) for hit in decision.always_strong] if decision else [],
        "contributions": [c.as_dict() for c in decision.contributions] if decision else [],
        "files": list(snap.change_set.paths) if snap else [],
        "refreshing": folder.refreshing,
        "error": folder.error,
        "policyApproved": approved,
        "policyWarnings": [str(w) for w in snap.policy.warnings] if snap else [],
    }


def notify(ls: RouteAgentServer, folder: FolderState) -> None:
    if ls.settings.risk_notifications:
        ls.protocol.notify(NOTIFICATION, summary(ls, folder))


def risk_summary(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    try:
        parsed = _SummaryArgs.model_validate(args[0] if args else {})
    except ValidationError as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    folder = None
    if parsed.uri is not None:
        where = ls.locate(parsed.uri)
        folder = where[0] if where is not None else ls.folders.get(parsed.uri)
    elif len(ls.folders) == 1:
        folder = next(iter(ls.folders.values()))
    if folder is None:
        raise JsonRpcInvalidParams.of(ValueError(f"no workspace folder contains {parsed.uri}"))
    return summary(ls, folder)


async def ledger_report(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        ledger = open_ledger(os.environ.get("ROUTE_AGENT_LEDGER") or None)
        try:
            return report_json(ledger.rows(), ledger.location)
        finally:
            ledger.close()

    try:
        return await asyncio.to_thread(read)
    except LedgerError as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None


def register(server: RouteAgentServer) -> None:
    server.command("route-agent.riskSummary")(risk_summary)
    server.command("route-agent.ledgerReport")(ledger_report)
