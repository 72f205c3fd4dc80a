"""`route-agent serve`: the language server built (every feature registered) and run over stdio."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from route_agent.lsp.features import register_all
from route_agent.lsp.pygls_private import is_shut_down
from route_agent.lsp.server import SHUTDOWN_GRACE_S, LspLogHandler, RouteAgentServer


def create_server() -> RouteAgentServer:

    server = RouteAgentServer()
    register_all(server)
    return server


def configure_logging(server: RouteAgentServer) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = LspLogHandler(server)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.getLogger("route_agent").addHandler(handler)
    logging.getLogger("route_agent").setLevel(logging.INFO)
    logging.getLogger("route_agent").propagate = False
    # pygls logs every message it sends at INFO; keep only its warnings, on stderr.
    pygls_logger = logging.getLogger("pygls")
    pygls_logger.setLevel(logging.WARNING)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    stderr.addFilter(drop_routine_cancels)
    pygls_logger.addHandler(stderr)
    pygls_logger.propagate = False


def drop_routine_cancels(record: logging.LogRecord) -> bool:
    """pygls warns about a `$/cancelRequest` for a request it has already answered. Editors cancel
    hovers and code actions as the user types, usually after the answer went out: that is normal,
    and it filled the editor's log (14 lines for four typed lines)."""
    return not (record.name.startswith("pygls") and str(record.msg).startswith("Cancel notification for unknown message id"))


async def serve_stdio(server: RouteAgentServer) -> int:
    from route_agent.lsp.stdio import FdWriter, open_stdin_reader, read_messages

    server.loop = asyncio.get_running_loop()
    # Anything printed by accident must not corrupt the protocol: stdout's descriptor is kept for
    # frames, and sys.stdout now points at stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    server.protocol.set_writer(FdWriter(out_fd))
    reader = await open_stdin_reader()
    code = 0
    try:
        await read_messages(reader, server.protocol)
        code = 0 if is_shut_down(server.protocol) else 1
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.stop_everything(), timeout=SHUTDOWN_GRACE_S + 0.3)
    return code


def main() -> None:
    server = create_server()
    configure_logging(server)
    # Not asyncio.run: it would wait for the default executor's threads, which may be inside git.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    code = loop.run_until_complete(serve_stdio(server))
    sys.stderr.flush()
    # Worker threads may still be inside a git call; do not wait for them past the grace period.
    os._exit(code)
