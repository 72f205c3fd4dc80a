#!/usr/bin/env bash
# Install everything and run every test: lint, types, the schema check, pytest, the extension's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
bash scripts/setup-agents.sh
PY=.venv/bin/python

echo "== ruff"; $PY -m ruff check server tests benchmarks
echo "== mypy --strict"; $PY -m mypy --strict server/route_agent
echo "== policies/schema.json is current"; $PY -m route_agent policy schema | diff -u policies/schema.json - \
  || { echo "policies/schema.json is stale: run '.venv/bin/route-agent policy schema > policies/schema.json'"; exit 1; }
echo "== pytest (then seconds per test folder, from .test-results/junit.xml)"
mkdir -p .test-results && rm -f .test-results/junit.xml
pytest_status=0
$PY -m pytest -q -p no:cacheprovider --junitxml=.test-results/junit.xml tests || pytest_status=$?
$PY scripts/suite_times.py .test-results/junit.xml || true  # the table is for reading; pytest's status decides
if [ "$pytest_status" != 0 ]; then exit "$pytest_status"; fi
echo "== VS Code extension: unit tests, and the .vsix"
(cd client-vscode && npm ci --no-audit --no-fund && npm run package && npm test)
echo "== VS Code extension: end-to-end in code-server 4.100.3 + Chromium (screenshots in tests/e2e/screenshots/)"
(cd client-vscode && npm run test:e2e)
