"""Shared pytest fixtures for every test folder."""

from __future__ import annotations

# --- the scripted OpenAI-compatible model server, `fake_llm` --------------------------------------
from fakeserver.fixtures import fake_llm  # noqa: F401  (a fixture, registered by import)
