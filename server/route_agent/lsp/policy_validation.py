"""Live validation of a policy file being edited: its own text, layered over the default (and, for a
repository's policy, compared with the user's layers), shown as diagnostics in that file. Debounced
per document like the risk refresh, and parsed in a worker thread, so typing never waits for it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls import uris

from route_agent.lsp.diagnostic_items import LOWERED_CODE, issue_diagnostic
from route_agent.policy import REPO_POLICY_PATHS, PolicyCache, PolicyError
from route_agent.policy.loader import merge_layers, parse_layer, validate
from route_agent.policy.strictness import lowered_issues, restrict
from route_agent.workspace.state import user_policy_path

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def policy_text_diagnostics(text: str, path: str, cache: PolicyCache) -> list[types.Diagnostic]:
    """Parse and validate a policy being edited, layered over the default; errors in this file.

    A repository's policy is also compared with the user's own layers: what it would lower is a
    warning at its line, as the CLI prints it (the setting is ignored)."""
    try:
        layer = parse_layer(text, path)
        trusted = [cache.default_layer()]
        if is_repo_policy_path(Path(path)):
            user = user_policy_path()
            if user.is_file():
                trusted.append(cache.layer(user))
            proposed = validate(merge_layers([*trusted, layer]), path)
            _, lowered = restrict(validate(merge_layers(trusted), path), proposed)
            return [issue_diagnostic(issue, types.DiagnosticSeverity.Warning, LOWERED_CODE)
                    for issue in lowered_issues(lowered, layer)]
        validate(merge_layers([*trusted, layer]), path)
    except PolicyError as exc:
        return [issue_diagnostic(issue, types.DiagnosticSeverity.Error, "policy") for issue in exc.issues if issue.file == path]
    return []


def is_repo_policy_path(candidate: Path) -> bool:
    posix = candidate.as_posix()
    return any(posix.endswith("/" + rel) for rel in REPO_POLICY_PATHS)


def is_policy_document(ls: RouteAgentServer, uri: str) -> bool:
    path = uris.to_fs_path(uri)
    if path is None:
        return False
    candidate = Path(path)
    if any(ls.settings_for(folder).policy_path == candidate for folder in (None, *ls.folders.values())):
        return True
    if candidate == user_policy_path():
        return True
    return is_repo_policy_path(candidate)


def schedule_policy_check(ls: RouteAgentServer, uri: str, delay: float | None = None) -> None:
    """Validate the document's text after the debounce (each edit pushes it back), in a worker thread."""
    timers = ls.diagnostics.policy_timers
    if (timer := timers.pop(uri, None)) is not None:
        timer.cancel()
    loop = ls.loop or asyncio.get_running_loop()
    wait = ls.settings.debounce_s if delay is None else delay
    timers[uri] = loop.call_later(wait, lambda: ls.spawn(_validate(ls, uri)))


async def _validate(ls: RouteAgentServer, uri: str) -> None:
    ls.diagnostics.policy_timers.pop(uri, None)
    doc = ls.document(uri)
    path = uris.to_fs_path(uri)
    if doc is None or path is None:
        return
    cache = next(iter(ls.folders.values())).policy_cache if ls.folders else PolicyCache()
    version = doc.version
    found = await asyncio.to_thread(policy_text_diagnostics, doc.text, path, cache)
    current = ls.document(uri)
    if current is None or current.version != version or uri in ls.diagnostics.policy_timers:
        return  # closed, or edited since: a newer check is due
    ls.diagnostics.policy[uri] = found
    ls.deliver_diagnostics()


def forget_policy_document(ls: RouteAgentServer, uri: str) -> None:
    if (timer := ls.diagnostics.policy_timers.pop(uri, None)) is not None:
        timer.cancel()
    if ls.diagnostics.policy.pop(uri, None) is not None:
        ls.deliver_diagnostics()
