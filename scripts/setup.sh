#!/usr/bin/env bash
# Install route-agent and everything its tests need, on a fresh Debian machine (idempotent).
#   scripts/setup.sh            Python venv + route-agent[dev]
#   scripts/setup.sh --system   also the Debian packages and editors the full test suite uses
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${1:-}" = "--system" ]; then
  bash scripts/setup-system.sh
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
echo "setup: route-agent installed in $ROOT/.venv"

# The external agents the end-to-end tests drive (tests/e2e/test_external_agents.py), in a venv of
# their own: their dependencies (litellm and many more) must not mix with route-agent's. Installed
# once; a later run only checks the pinned versions.
AGENTS="aider-chat==0.86.2 mini-swe-agent==2.4.6"
if [ ! -x .agents-venv/bin/python ]; then
  python3 -m venv .agents-venv
fi
if [ "$(.agents-venv/bin/python -m pip list --format=freeze 2>/dev/null | grep -c -E '^(aider-chat==0\.86\.2|mini-swe-agent==2\.4\.6)$')" != 2 ]; then
  .agents-venv/bin/python -m pip install --quiet --disable-pip-version-check $AGENTS
fi
echo "setup: aider and mini-swe-agent installed in $ROOT/.agents-venv (for the external-agent tests)"
