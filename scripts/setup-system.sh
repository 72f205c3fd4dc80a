#!/usr/bin/env bash
# Debian packages, Node packages and editors used by the full test suite. Needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT="$SUDO apt-get -o DPkg::Lock::Timeout=300 -y --no-install-recommends"

# --- Debian packages (each section adds what its tests need) ---
PKGS=(git bubblewrap)
# --- language server: a real editor other than VS Code for tests/e2e/test_lsp_neovim.py
PKGS+=(neovim)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $APT install "${missing[@]}"
fi
echo "setup-system: done"
