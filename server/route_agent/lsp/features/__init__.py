"""Every LSP method and `route-agent.*` command the server handles, registered here and only here.

One module per method or command, each with a `handle` function (and, for hover, a JSON fast path).
Features never import each other: they share what they need through the server's state (the
folders and their snapshots, `ls.diagnostics`, `ls.runs`, `ls.documents`) and the modules beside
this package (routed_runs, edits, risk_view, policy_validation, file_watch, configuration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.features import (
    code_action,
    code_action_resolve,
    did_change,
    did_change_configuration,
    did_change_watched_files,
    did_change_workspace_folders,
    did_close,
    did_open,
    did_save,
    document_diagnostic,
    hover,
    initialize,
    initialized,
    progress_cancel,
    shutdown,
    workspace_diagnostic,
)
from route_agent.lsp.features.commands import (
    add_path_rule,
    allow_unsandboxed,
    apply_patch,
    approve_policy,
    cancel_run,
    commit_patch,
    escalate,
    explain_risk,
    ledger_report,
    policy_commands,
    refresh,
    reject_patch,
    risk_summary,
    route_fix,
    show_patch,
    status,
)

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

COMMANDS = {
    "route-agent.routeFix": route_fix.handle,
    "route-agent.routeTask": route_fix.handle,
    "route-agent.policyCommands": policy_commands.handle,
    "route-agent.approvePolicy": approve_policy.handle,
    "route-agent.allowUnsandboxed": allow_unsandboxed.handle,
    "route-agent.escalate": escalate.handle,
    "route-agent.cancelRun": cancel_run.handle,
    "route-agent.applyPatch": apply_patch.handle,
    "route-agent.applyAndCommit": commit_patch.handle,
    "route-agent.rejectPatch": reject_patch.handle,
    "route-agent.showPatch": show_patch.handle,
    "route-agent.explainRisk": explain_risk.handle,
    "route-agent.addPathRule": add_path_rule.handle,
    "route-agent.status": status.handle,
    "route-agent.refresh": refresh.handle,
    "route-agent.riskSummary": risk_summary.handle,
    "route-agent.ledgerReport": ledger_report.handle,
}


def register_all(server: RouteAgentServer) -> None:
    feature = server.feature
    feature(types.INITIALIZE)(initialize.handle)
    feature(types.INITIALIZED)(initialized.handle)
    feature(types.SHUTDOWN)(shutdown.handle)
    feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration.handle)
    feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(did_change_workspace_folders.handle)
    feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open.handle)
    feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change.handle)
    feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))(did_save.handle)
    feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close.handle)
    feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(did_change_watched_files.handle)
    feature(types.TEXT_DOCUMENT_HOVER)(hover.handle)
    server.protocol.fast_requests[types.TEXT_DOCUMENT_HOVER] = lambda params: hover.fast(server, params)
    feature(types.TEXT_DOCUMENT_CODE_ACTION, code_action.OPTIONS)(code_action.handle)
    feature(types.CODE_ACTION_RESOLVE)(code_action_resolve.handle)
    feature(types.TEXT_DOCUMENT_DIAGNOSTIC, document_diagnostic.OPTIONS)(document_diagnostic.handle)
    feature(types.WORKSPACE_DIAGNOSTIC)(workspace_diagnostic.handle)
    feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)(progress_cancel.handle)
    for name, handler in COMMANDS.items():
        server.command(name)(handler)
