"""Where the repository's own files are, for tests at any depth under tests/ (moving a test file
must not change what `ROOT` means in it)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
