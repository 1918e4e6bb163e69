#!/usr/bin/env bash
# Stop the demo's Alertmanager. Safe when it is not running, safe twice.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="${ALERTMANAGER_DATA_DIR:-$(cd "$here/../.." && pwd)/.run/alertmanager}"
if [[ -f "$data/pid" ]] && kill -0 "$(cat "$data/pid")" 2>/dev/null; then
  kill "$(cat "$data/pid")"
  echo "stopped alertmanager (pid $(cat "$data/pid"))"
fi
rm -f "$data/pid"
