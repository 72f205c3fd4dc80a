"""What every `route-agent.*` command shares: its one JSON-object argument, validated, and errors."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pygls.exceptions import JsonRpcInvalidParams

from route_agent.pipeline.prepare import RunRefused

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


class CommandArgs(BaseModel):
    model_config = ConfigDict(extra="ignore")


ArgsT = TypeVar("ArgsT", bound=CommandArgs)


class RouteFixArgs(CommandArgs):
    folder: str | None = Field(default=None, validation_alias=AliasChoices("folder", "folderUri"))
    """The workspace folder's URI; optional with one folder."""
    uri: str | None = None
    path: str | None = None
    brief: str = Field(min_length=1, max_length=64_000)
    lane: str | None = "auto"
    range: dict[str, Any] | None = None
    wait: bool = False
    """Answer when the run ends (with its outcome), so that `$/cancelRequest` cancels the run."""


class RunArgs(CommandArgs):
    run_id: str = Field(validation_alias=AliasChoices("run_id", "runId"))


class FolderArgs(CommandArgs):
    folder: str | None = Field(default=None, validation_alias=AliasChoices("folder", "folderUri"))


class ApproveArgs(FolderArgs):
    sha256: str = Field(min_length=64, max_length=64)


class FolderPathArgs(CommandArgs):
    folder: str | None = None
    path: str | None = None


class PathRuleArgs(CommandArgs):
    folder: str
    signal: str
    glob: str


def parse_args(model: type[ArgsT], args: tuple[Any, ...]) -> ArgsT:
    raw = args[0] if args else {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None


def resolve_folder_uri(ls: RouteAgentServer, given: str | None) -> str:
    if given is None and len(ls.folders) == 1:
        return next(iter(ls.folders))
    if given is None or given not in ls.folders:
        known = given.rstrip("/") if given else None
        match = next((uri for uri in ls.folders if known is not None and uri.rstrip("/") == known), None)
        if match is None:
            raise JsonRpcInvalidParams.of(ValueError(f"unknown workspace folder {given}"))
        return match
    return given


def refused(ls: RouteAgentServer, exc: RunRefused | str) -> dict[str, Any]:
    """An expected refusal (no API key, unapproved policy commands, an untrusted workspace, a run that
    can no longer escalate): one `window/showMessage` (Error) saying what to do, and the request
    answered with `{"refused": true, "message": ...}`. Not a JSON-RPC error: clients show those raw
    (an error code), and the server would log a traceback for what is no fault."""
    from lsprotocol import types

    message = plain_text(str(exc) + (_EDITOR_HINTS.get(exc.refusal.kind, "") if isinstance(exc, RunRefused) else ""))
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"route-agent: {message}"))
    return {"refused": True, "message": message}


_EDITOR_HINTS = {
    "missing_key": "; set it in the environment the editor starts route-agent serve with, then restart the server",
    "unsandboxed": " (or the editor's Allow Unsandboxed Checks command)",
}
"""What the editor adds to a pipeline refusal (pipeline/prepare.py) that the terminal says otherwise."""


def plain_text(text: str) -> str:
    """A message for `window/showMessage`, which is plain text: Markdown code spans become quotes."""
    return re.sub(r"`([^`\n]*)`", r"'\1'", text)



class SummaryArgs(BaseModel):
    model_config = ConfigDict(extra="ignore")
    uri: str | None = Field(default=None, validation_alias=AliasChoices("uri", "folderUri", "folder"))
