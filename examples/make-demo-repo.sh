#!/usr/bin/env bash
# Make the demo repository: examples/demo-service as a git repository with one commit, plus a
# pending (uncommitted) fix for the sync worker's retry leak: examples/demo-pending.diff, applied
# to the work tree only.
#   examples/make-demo-repo.sh DEST        DEST must not exist yet, or be an earlier demo repository
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DEST="${1:?usage: make-demo-repo.sh DEST}"

if [ -e "$DEST" ]; then
  if [ -f "$DEST/.demo-repo" ]; then
    rm -rf "$DEST"
  else
    echo "make-demo-repo: $DEST exists and is not a demo repository; choose another path" >&2
    exit 2
  fi
fi
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"   # absolute: the script changes directory below
cp -R "$HERE/demo-service/." "$DEST/"
cd "$DEST"
# A fixed identity and no user or system configuration: the same repository on every machine.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="demo" GIT_AUTHOR_EMAIL="demo@example.invalid"
export GIT_COMMITTER_NAME="demo" GIT_COMMITTER_EMAIL="demo@example.invalid"
export GIT_AUTHOR_DATE="2025-01-01T12:00:00Z" GIT_COMMITTER_DATE="2025-01-01T12:00:00Z"
git init -q -b main
printf '__pycache__/\n.pytest_cache/\n.route-agent/\n.demo-repo\n' > .gitignore
git add -A
git commit -q -m "demo-service 0.3.1"
touch .demo-repo

# The pending change: four Python files, not committed.
git -c core.hooksPath=/dev/null apply "$HERE/demo-pending.diff"
echo "make-demo-repo: $DEST ready; pending change:"
git -c core.fsmonitor=false status --short
