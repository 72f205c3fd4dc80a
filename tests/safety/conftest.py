"""Fixtures of the safety suite (issue 8): a Scenario per test (see safety_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from safety_support import Scenario


@pytest.fixture
def scenario(tmp_path: Path, fake_llm) -> Scenario:  # type: ignore[no-untyped-def]
    return Scenario(tmp_path, fake_llm)
