#!/usr/bin/env bash
# The external agents the end-to-end tests drive (tests/e2e/cli/test_external_agents.py), in a venv of
# their own: their dependencies (litellm and many more) must not mix with route-agent's. Installed
# once; a later run only checks the pinned versions. scripts/test.sh runs this; the demo does not
# need it (installing aider takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
AGENTS="aider-chat==0.86.2 mini-swe-agent==2.4.6"
if [ ! -x .agents-venv/bin/python ]; then
  python3 -m venv .agents-venv
fi
if [ "$(.agents-venv/bin/python -m pip list --format=freeze 2>/dev/null | grep -c -E '^(aider-chat==0\.86\.2|mini-swe-agent==2\.4\.6)$')" != 2 ]; then
  .agents-venv/bin/python -m pip install --quiet --disable-pip-version-check $AGENTS
fi
echo "setup: aider and mini-swe-agent installed in $ROOT/.agents-venv (for the external-agent tests)"
