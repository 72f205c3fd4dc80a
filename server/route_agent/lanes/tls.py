"""One TLS context per process for every HTTP client route-agent makes (lane client, relay).

Building a verifying context reads the whole CA bundle: 60 ms here, the largest single cost of a
routed run on a small repository once the worktree is warm. httpx builds a new one for every client
unless it is given one, and the language server makes a client per run; a context is safe to share
between clients and threads, so it is built once. `load_in_background()` starts building it while
a run's git and policy work goes on (loading the bundle releases the GIL).

It is the context httpx would build itself (`httpx.create_ssl_context()`: certifi's bundle, or
`SSL_CERT_FILE` / `SSL_CERT_DIR` when set), kept per value of those two variables so a changed
setting is honoured by the next client.
"""

from __future__ import annotations

import os
import ssl
import threading

import httpx

_lock = threading.Lock()
_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def shared_tls_context() -> ssl.SSLContext:
    """The verifying TLS context for the current `SSL_CERT_FILE` / `SSL_CERT_DIR`, built once."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _lock:  # a second caller waits for the first build instead of making its own
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = httpx.create_ssl_context()
        return context


def load_in_background() -> None:
    """Start building the shared context in a daemon thread (a no-op once it is built)."""
    threading.Thread(target=shared_tls_context, name="route-agent-tls", daemon=True).start()
