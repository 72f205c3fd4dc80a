"""The lane client's and relay's TLS context is built once per process (lanes/tls.py)."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import certifi
import httpx
import pytest

from route_agent.lanes import tls


def test_every_client_shares_one_verifying_context_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setattr(tls, "_contexts", {})
    built: list[ssl.SSLContext] = []
    real = httpx.create_ssl_context

    def counting() -> ssl.SSLContext:
        built.append(real())
        return built[-1]

    monkeypatch.setattr(tls.httpx, "create_ssl_context", counting)
    threads = [threading.Thread(target=tls.shared_tls_context) for _ in range(4)]
    tls.load_in_background()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    context = tls.shared_tls_context()
    assert built == [context], "the CA bundle was read more than once"
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs(), "no CA certificate was loaded"


def test_a_changed_ssl_cert_file_gets_its_own_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tls, "_contexts", {})
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    default = tls.shared_tls_context()
    bundle = tmp_path / "one.pem"
    bundle.write_text(Path(certifi.where()).read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    own = tls.shared_tls_context()
    assert own is not default and len(own.get_ca_certs()) == 1
    monkeypatch.delenv("SSL_CERT_FILE")
    assert tls.shared_tls_context() is default
