#!/usr/bin/env bash
# Install route-agent, make the bundled demo repository (a little service with a pending fix) and
# route one task on it. Without a provider key this is a dry run: the decision and the verification
# plan, no model call. Extra arguments go to route-agent (for example --json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash examples/make-demo-repo.sh examples/demo-repo
echo
echo "\$ route-agent --task \"fix retry leak in sync worker\" --workspace examples/demo-repo $*"
exec .venv/bin/route-agent --task "fix retry leak in sync worker" --workspace examples/demo-repo "$@"
