"""Shared pytest fixtures. Each section is owned by the engineer named in its comment."""

from __future__ import annotations

# --- model lanes (issue 3): the scripted model server, `fake_llm` --------------------------------
from fakeserver.fixtures import fake_llm  # noqa: F401  (a fixture, registered by import)
