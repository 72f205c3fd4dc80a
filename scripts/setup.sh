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

