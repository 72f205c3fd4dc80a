"""route-agent.rejectPatch: book a review rejection of a run's verified patch, and why.

`route-agent ledger mark RUN_ID --rejected REASON` from the editor: the reason comes from the
arguments, or the user picks one in a `window/showMessageRequest`; the ledger's review rejection
rate counts it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from lsprotocol import types
from pydantic import Field

from route_agent.ledger import LedgerError
from route_agent.lsp.command_args import RunArgs, parse_args
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations

REASONS = ("Wrong fix", "Too broad", "Style or naming", "Not needed")


class RejectArgs(RunArgs):
    reason: str | None = Field(default=None, max_length=500)


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    from route_agent.pipeline.artifacts import record_review

    parsed = parse_args(RejectArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or record.status != "passed":
        why = f"run {parsed.run_id} has no verified patch to reject"
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"route-agent: {why}"))
        return {"recorded": False, "reason": why}
    reason = (parsed.reason or "").strip()
    if not reason:
        choice = await ls.window_show_message_request_async(types.ShowMessageRequestParams(
            type=types.MessageType.Info, message=f"route-agent: why is run {record.run_id}'s patch rejected?",
            actions=[types.MessageActionItem(title=title) for title in REASONS]))
        if choice is None:
            return {"recorded": False, "reason": "no reason was given"}
        reason = choice.title
    try:
        count = await asyncio.to_thread(record_review, os.environ.get("ROUTE_AGENT_LEDGER") or None, record.run_id, "rejected", reason)
    except LedgerError as exc:
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"route-agent: not recorded: {exc}"))
        return {"recorded": False, "reason": str(exc)}
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info,
                                                   message=f"route-agent: run {record.run_id} rejected in review ({reason})"))
    return {"recorded": count > 0, "reason": reason}
