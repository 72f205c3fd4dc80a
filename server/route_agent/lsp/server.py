"""The route-agent language server: a pygls `LanguageServer` subclass that owns all state.

State: open documents (spliced line lists), one `FolderState` per workspace folder with the latest
risk snapshot, the resolved settings and client features, routed runs, and what diagnostics were
last delivered. Risk is recomputed per folder, debounced, with git in a worker thread; readers
(hover, code actions) never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls import uris
from pygls.lsp.server import LanguageServer

from route_agent import __version__
from route_agent.lsp import policy_validation, risk_view
from route_agent.lsp.capabilities import ClientFeatures
from route_agent.lsp.protocol import RouteAgentProtocol
from route_agent.lsp.settings import RawOptions, Settings, resolve
from route_agent.lsp.state.diagnostics import DiagnosticStore
from route_agent.lsp.state.documents import DocumentStore, LineDocument
from route_agent.lsp.state.folders import FolderState, RiskSnapshot, compute_snapshot
from route_agent.lsp.state.runs import RunRegistry
from route_agent.policy import PolicyError
from route_agent.workspace.git import WorkspaceError, is_git_internal

logger = logging.getLogger("route_agent.lsp")

SHUTDOWN_GRACE_S = 1.5


class RouteAgentServer(LanguageServer):
    protocol: RouteAgentProtocol

    def __init__(self) -> None:
        super().__init__("route-agent", __version__, protocol_cls=RouteAgentProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.documents = DocumentStore()
        self.folders: dict[str, FolderState] = {}
        self.settings = Settings()
        self.init_options = RawOptions()
        self.client = ClientFeatures()
        self.runs = RunRegistry()
        self.diagnostics = DiagnosticStore()
        self.hover_cache: dict[tuple[int, str, int, bool], str | None] = {}
        self._uri_folder: dict[str, tuple[FolderState, str] | None] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- folders -------------------------------------------------------------------------------

    def add_folder(self, uri: str, name: str | None = None) -> FolderState | None:
        path = uris.to_fs_path(uri)
        if path is None:
            return None
        root = Path(path)
        folder = FolderState(uri=uri, root=root, name=name or root.name)
        self.folders[uri] = folder
        self._uri_folder.clear()
        return folder

    def remove_folder(self, uri: str) -> None:
        folder = self.folders.pop(uri, None)
        if folder is not None:
            if folder.timer is not None:
                folder.timer.cancel()
            if folder.task is not None:
                folder.task.cancel()
        self._uri_folder.clear()

    def locate(self, uri: str) -> tuple[FolderState, str] | None:
        """The folder holding `uri` (deepest first) and the repository-relative path."""
        if uri in self._uri_folder:
            return self._uri_folder[uri]
        found: tuple[FolderState, str] | None = None
        path = uris.to_fs_path(uri)
        if path is not None:
            best = -1
            for folder in self.folders.values():
                rel = folder.relative(path)
                if rel is not None and len(str(folder.root)) > best:
                    best, found = len(str(folder.root)), (folder, rel)
        if len(self._uri_folder) > 10_000:
            self._uri_folder.clear()
        self._uri_folder[uri] = found
        return found

    def uri_for(self, folder: FolderState, rel: str) -> str:
        root = folder.snapshot.repo.root if folder.snapshot else folder.root
        return uris.from_fs_path(str(root / rel)) or (folder.uri.rstrip("/") + "/" + rel)

    def buffers_for(self, folder: FolderState) -> dict[str, str]:
        out: dict[str, str] = {}
        for doc in self.documents:
            where = self.locate(doc.uri)
            if where is not None and where[0] is folder and not is_git_internal(where[1]):
                out[where[1]] = doc.text  # a buffer under .git/ (an open .git/config) is never part of a change
        return out

    # --- refresh -------------------------------------------------------------------------------

    def schedule_refresh(self, folder: FolderState, delay: float | None = None) -> None:
        """Debounced: every call pushes the refresh back; one refresh runs at a time per folder."""
        loop = self.loop or asyncio.get_running_loop()
        folder.refresh_pending = True
        if folder.timer is not None:
            folder.timer.cancel()
        wait = self.settings.debounce_s if delay is None else delay
        folder.timer = loop.call_later(wait, self._start_refresh, folder)

    def schedule_all(self, delay: float | None = None) -> None:
        for folder in self.folders.values():
            self.schedule_refresh(folder, delay)

    def _start_refresh(self, folder: FolderState) -> None:
        folder.timer = None
        if folder.refresh_running:
            folder.rerun = True
            return
        folder.refresh_pending = False
        folder.refresh_running = True
        task = asyncio.ensure_future(self._refresh(folder))
        folder.task = task
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _refresh(self, folder: FolderState) -> None:
        folder.generation += 1
        generation = folder.generation
        buffers = self.buffers_for(folder)
        try:
            snapshot: RiskSnapshot | None = await asyncio.to_thread(
                compute_snapshot, folder.root, buffers, folder.policy_cache, self.settings_for(folder).policy_path,
                self.settings_for(folder).lane, generation, folder.snapshot, os.environ.get("ROUTE_AGENT_LEDGER") or None,
            )
            folder.error = None
            folder.policy_error = None
        except PolicyError as exc:
            snapshot = None
            folder.policy_error = exc
            folder.error = f"policy error: {exc.issues[0]}" if exc.issues else "policy error"
        except WorkspaceError as exc:
            snapshot = None
            folder.error = str(exc)
        except asyncio.CancelledError:
            folder.refresh_running = False
            raise
        except Exception:
            logger.exception("risk refresh failed for %s", folder.root)
            snapshot = None
            folder.error = "internal error while computing the risk; see the route-agent log"
        finally:
            folder.refresh_running = False
        if folder.error:
            logger.warning("%s: %s", folder.root, folder.error)
        if snapshot is not None:
            folder.snapshot = snapshot
        if folder.rerun:
            folder.rerun = False
            self.schedule_refresh(folder, 0.0)
        self.deliver_diagnostics()
        risk_view.notify(self, folder)

    # --- documents -----------------------------------------------------------------------------

    def document(self, uri: str) -> LineDocument | None:
        return self.documents.get(uri)

    def document_touched(self, uri: str) -> None:
        """An open document changed (opened, edited, saved): unsaved buffers count, so its folder's
        risk is refreshed (debounced); a policy file being edited is validated from its text."""
        where = self.locate(uri)
        if where is not None:
            self.schedule_refresh(where[0])
        if policy_validation.is_policy_document(self, uri):
            policy_validation.schedule_policy_check(self, uri)

    def document_closed(self, uri: str) -> None:
        where = self.locate(uri)
        if where is not None:
            self.schedule_refresh(where[0])
        policy_validation.forget_policy_document(self, uri)

    # --- diagnostics ---------------------------------------------------------------------------

    def deliver_diagnostics(self) -> None:
        """Recompute every diagnostic from the server's state and deliver what changed."""
        self.diagnostics.deliver(self)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("background task failed: %r", exc, exc_info=exc)

    def apply_settings(self, settings: Settings) -> None:
        changed = settings != self.settings
        self.settings = settings
        if settings.state_dir is not None:
            os.environ["ROUTE_AGENT_STATE_DIR"] = str(settings.state_dir)
        logging.getLogger("route_agent").setLevel(settings.logging_level)
        if changed:
            self.schedule_all(0.0)

    def settings_for(self, folder: FolderState | None) -> Settings:
        """The settings in force for a folder: its own when the client gave some, else the server's."""
        if folder is not None and folder.settings is not None:
            return folder.settings
        return self.settings

    def apply_folder_settings(self, folder: FolderState, settings: Settings) -> None:
        changed = settings != self.settings_for(folder)
        folder.settings = settings
        if changed:
            self.schedule_refresh(folder, 0.0)

    def resolve_settings(self, *layers: RawOptions) -> Settings:
        first = next(iter(self.folders.values()), None)
        return resolve(self.init_options, *layers, workspace_root=first.root if first else None)

    # --- shutdown ------------------------------------------------------------------------------

    @property
    def shutting_down(self) -> bool:
        """`shutdown` was received: nothing more is said to the client."""
        return bool(getattr(self.protocol, "_shutdown", False))

    async def stop_everything(self) -> None:
        """Cancel runs, timers and refreshes; give worker threads a moment to finish their git."""
        await self.runs.cancel_all()
        for folder in self.folders.values():
            if folder.timer is not None:
                folder.timer.cancel()
        for timer in self.diagnostics.policy_timers.values():
            timer.cancel()
        for task in list(self.background):
            task.cancel()
        if self.background:
            await asyncio.wait(list(self.background), timeout=SHUTDOWN_GRACE_S)


class LspLogHandler(logging.Handler):
    """Python logging -> `window/logMessage` (stdout carries the protocol, so never print)."""

    LEVELS = ((logging.ERROR, types.MessageType.Error), (logging.WARNING, types.MessageType.Warning),
              (logging.INFO, types.MessageType.Info))

    def __init__(self, server: RouteAgentServer) -> None:
        super().__init__()
        self.server = server
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False) or self.server.protocol.writer is None:
            return
        self._local.busy = True
        try:
            kind = next((t for level, t in self.LEVELS if record.levelno >= level), types.MessageType.Log)
            params = types.LogMessageParams(type=kind, message=self.format(record))
            loop = self.server.loop
            if loop is not None and threading.current_thread() is not threading.main_thread():
                loop.call_soon_threadsafe(self.server.window_log_message, params)
            else:
                self.server.window_log_message(params)
        except Exception:
            self.handleError(record)
        finally:
            self._local.busy = False
