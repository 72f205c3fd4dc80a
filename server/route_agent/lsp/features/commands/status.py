"""route-agent.status: folders, runs, documents and diagnostics, for tests and troubleshooting."""

from __future__ import annotations

from typing import Any

from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations


def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    folders = []
    for folder in ls.folders.values():
        snap = folder.snapshot
        folders.append({"uri": folder.uri, "refreshing": folder.refreshing, "error": folder.error,
                        "generation": snap.generation if snap else 0,
                        "risk_score": snap.decision.risk_score if snap else None, "lane": snap.decision.lane if snap else None,
                        "paths": list(snap.change_set.paths) if snap else []})
    runs = [r.as_dict() for r in ls.runs.all()]
    return {"folders": folders, "runs": runs, "documents": len(ls.documents),
            "diagnostics": {uri: len(d) for uri, d in ls.diagnostics.cache.items()}}
