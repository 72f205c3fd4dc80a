#!/usr/bin/env bash
# Install route-agent, make the bundled demo repository (a little service with a pending fix) and
# route one task on it: first a dry run (the decision and the verification plan, no model call), then
# the whole loop. With OPENROUTER_API_KEY set, the real lanes run. Without it, the same task runs
# against a SCRIPTED model on 127.0.0.1 (recorded replies, no real model): the fast lane's patch is
# caught by a tamper check, the task escalates, the strong lane's patch passes and is shown.
# Extra arguments go to the dry run and the real run (for example --json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash examples/make-demo-repo.sh examples/demo-repo
TASK="fix retry leak in sync worker"
echo
if [ -n "${OPENROUTER_API_KEY:-}" ]; then
  echo "\$ route-agent --task \"$TASK\" --workspace examples/demo-repo --dry-run $*"
  .venv/bin/route-agent --task "$TASK" --workspace examples/demo-repo --dry-run "$@"
  echo
  echo "== OPENROUTER_API_KEY is set: the real lanes run"
  echo "\$ route-agent --task \"$TASK\" --workspace examples/demo-repo $*"
  exec .venv/bin/route-agent --task "$TASK" --workspace examples/demo-repo "$@"
fi
echo "\$ route-agent --task \"$TASK\" --workspace examples/demo-repo $*"
.venv/bin/route-agent --task "$TASK" --workspace examples/demo-repo "$@"   # no key: a dry run that says so
echo
echo "== No OPENROUTER_API_KEY: the same task against a SCRIPTED model (recorded replies on 127.0.0.1, not a real model)"
rm -rf examples/.demo-state
exec .venv/bin/python examples/scripted_demo.py examples/demo-repo examples/.demo-state
