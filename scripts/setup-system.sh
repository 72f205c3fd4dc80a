#!/usr/bin/env bash
# Debian packages, Node packages and editors used by the full test suite. Needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT="$SUDO apt-get -o DPkg::Lock::Timeout=300 -y --no-install-recommends"

# --- Debian packages (each section adds what its tests need) ---
PKGS=(git bubblewrap)
# --- language server: a real editor other than VS Code for tests/e2e/editor/test_lsp_neovim.py
PKGS+=(neovim)
# --- ledger: a real PostgreSQL server for the team-ledger tests (started per test run by the fixture)
PKGS+=(postgresql)
# --- toolchain detection (tests/e2e/cli/test_toolchain_runs.py): a real Go module routed through `go test -json` and `go vet`
PKGS+=(golang-go)
# ... and a real Rust crate through `cargo test` and `cargo clippy` (Debian's cargo, rustc and clippy: about 30 s to install)
PKGS+=(cargo rust-clippy)
# --- VS Code extension (client-vscode) and its real-editor test: Node, code-server's native
# build deps, ripgrep (code-server's search, linked in place of the downloaded one), Chromium.
PKGS+=(build-essential pkg-config libkrb5-dev libxkbfile-dev libsecret-1-dev libx11-dev ripgrep chromium)
if ! command -v node >/dev/null 2>&1; then PKGS+=(nodejs npm libnode-dev); fi
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $APT install "${missing[@]}"
fi
# === code-server (begin) =====================================================================
# VS Code 1.100.3 as code-server 4.100.3 (the last release on Node 20), for the extension's
# end-to-end test. Installed once into a cache dir outside the repo and skipped when present.
# Its own install scripts download ripgrep and prebuilt modules, which this network refuses, so
# scripts are skipped and native modules rebuilt against the system Node (real-clients.md).
CODE_SERVER_VERSION=4.100.3
CODE_SERVER_DIR=${ROUTE_AGENT_CODE_SERVER_DIR:-/opt/route-agent-code-server}
CODE_SERVER_STAMP="$CODE_SERVER_DIR/.installed-$CODE_SERVER_VERSION"
if [ -f "$CODE_SERVER_STAMP" ] && [ -x "$CODE_SERVER_DIR/node_modules/.bin/code-server" ]; then
  echo "setup-system: code-server $CODE_SERVER_VERSION already in $CODE_SERVER_DIR"
else
  echo "setup-system: installing code-server $CODE_SERVER_VERSION into $CODE_SERVER_DIR"
  $SUDO mkdir -p "$CODE_SERVER_DIR"
  $SUDO chown "$(id -u):$(id -g)" "$CODE_SERVER_DIR"
  (
    set -euo pipefail
    cd "$CODE_SERVER_DIR"
    [ -f package.json ] || echo '{"name":"route-agent-code-server","private":true}' > package.json
    export npm_config_yes=true npm_config_nodedir=/usr npm_config_unsafe_perm=true
    npm install "code-server@$CODE_SERVER_VERSION" --ignore-scripts --no-audit --no-fund --loglevel=error
    npm rebuild argon2 --loglevel=error
    cd node_modules/code-server/lib/vscode
    npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
    mkdir -p node_modules/@vscode/ripgrep/bin
    ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
    npm rebuild --loglevel=error
    (cd bin/remote-cli && ln -sf code-linux.sh code-server)
    (cd bin/helpers && ln -sf browser-linux.sh browser.sh)
    (cd extensions && npm install --omit=dev --no-audit --no-fund --loglevel=error)
  )
  touch "$CODE_SERVER_STAMP"
  echo "setup-system: code-server installed: $CODE_SERVER_DIR/node_modules/.bin/code-server"
fi
# === code-server (end) =======================================================================

echo "setup-system: done"
