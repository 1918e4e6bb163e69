#!/usr/bin/env bash
# Regenerate deploy/requirements.lock: resolve pyproject.toml's dependencies (the dev extra, which
# includes the service's) into a throwaway virtualenv and record the exact versions installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PYTHON" -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install --quiet --upgrade pip
"$TMP/venv/bin/pip" install --quiet '.[dev]'
{
  echo "# Exact versions of every Python package routerwatch installs, used as pip constraints by"
  echo "# \`make\` (the .venv the tests and the demo run in, so CI) and deploy/Dockerfile. Regenerate with"
  echo "# deploy/lock.sh after changing the dependencies in pyproject.toml, and commit the result."
  "$TMP/venv/bin/pip" freeze --exclude-editable | grep -v -i '^routerwatch'
} > deploy/requirements.lock
echo "wrote deploy/requirements.lock ($(grep -vc '^#' deploy/requirements.lock) packages)"
