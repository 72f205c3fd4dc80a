"""route-agent.showPatch: the run's patch as a file, shown when the client can."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.command_args import RunArgs, parse_args
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations


def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = parse_args(RunArgs, args)
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
    else:
        # The client cannot open a document for us: the patch (its head) in a message, with the file.
        lines = record.patch.splitlines()
        shown = "\n".join(lines[:PATCH_LINES_IN_MESSAGE])
        more = f"\n… {len(lines) - PATCH_LINES_IN_MESSAGE} more line(s)" if len(lines) > PATCH_LINES_IN_MESSAGE else ""
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=(
            f"route-agent: the verified patch of run {record.run_id} is in {target}\n\n{shown}{more}")))
    return {"uri": uri, "patch": record.patch}


PATCH_LINES_IN_MESSAGE = 40
