"""Watching git's HEAD and index and the policies: watchers registered dynamically for git's HEAD and index and the policies.

Registered when the client supports dynamic registration. The server also watches the same few
files itself, whatever the client declares: a client without dynamic registration (Neovim's builtin
client, many others) would never tell us about a commit or checkout made outside the editor, and one
that registers watchers may still only fire them for folders holding tracked files, never for
`.git/`. The poll is a handful of `stat` calls every two seconds; an event and a poll that both see
a change schedule one debounced refresh.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.policy import REPO_POLICY_PATHS

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)

WATCH_GLOBS = ("**/.git/HEAD", "**/.git/index", *(f"**/{p}" for p in REPO_POLICY_PATHS))
POLL_INTERVAL_S = 2.0



def watchers(ls: RouteAgentServer) -> list[types.FileSystemWatcher]:
    found = [types.FileSystemWatcher(glob_pattern=glob) for glob in WATCH_GLOBS]
    for path in sorted({p for p in (ls.settings_for(f).policy_path for f in (None, *ls.folders.values())) if p is not None}):
        found.append(types.FileSystemWatcher(glob_pattern=str(path)))
    return found


async def register_watchers(ls: RouteAgentServer) -> None:
    options = types.DidChangeWatchedFilesRegistrationOptions(watchers=watchers(ls))
    registration = types.Registration(id=f"route-agent-watch-{uuid.uuid4()}", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                                      register_options=options)
    try:
        await ls.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
    except Exception as exc:
        logger.warning("could not register file watchers: %s", exc)


def _polled_paths(ls: RouteAgentServer) -> dict[Path, str]:
    """The files the registered watchers would cover, per folder URI."""
    out: dict[Path, str] = {}
    for folder in ls.folders.values():
        git_dir = folder.snapshot.repo.git_dir if folder.snapshot is not None else folder.root / ".git"
        for path in (git_dir / "HEAD", git_dir / "index", *(folder.root / rel for rel in REPO_POLICY_PATHS)):
            out[path] = folder.uri
        policy_path = ls.settings_for(folder).policy_path
        if policy_path is not None:
            out[policy_path] = folder.uri
    return out


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def poll_watched_files(ls: RouteAgentServer, interval_s: float = POLL_INTERVAL_S) -> None:
    """Stat the watched files every `interval_s`, for every client; runs until the server stops."""
    # The baseline is taken now, as the first refresh starts: a change from here on is noticed.
    seen: dict[Path, tuple[int, int, int] | None] = {path: _identity(path) for path in _polled_paths(ls)}
    while True:
        await asyncio.sleep(interval_s)
        touched: set[str] = set()
        for path, folder_uri in _polled_paths(ls).items():
            ident = _identity(path)
            if path in seen and seen[path] != ident:
                touched.add(folder_uri)
            seen[path] = ident
        for uri in touched:
            folder = ls.folders.get(uri)
            if folder is not None:
                ls.schedule_refresh(folder)
