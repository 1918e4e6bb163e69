#!/usr/bin/env bash
# Start a local Prometheus Alertmanager (Debian package prometheus-alertmanager) on 127.0.0.1
# for the demo. Idempotent; prints its URL as the last line.
#   ALERTMANAGER_PORT (default 9095), ALERTMANAGER_DATA_DIR (default <repo>/.run/alertmanager)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
port="${ALERTMANAGER_PORT:-9095}"
data="${ALERTMANAGER_DATA_DIR:-$repo/.run/alertmanager}"
bin="$(command -v prometheus-alertmanager || command -v alertmanager || true)"
[[ -n "$bin" ]] || { echo "alertmanager not found: install the Debian package prometheus-alertmanager" >&2; exit 1; }
mkdir -p "$data"
url="http://127.0.0.1:$port"
ready() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/-/ready", timeout=1)' "$url" 2>/dev/null; }
if [[ -f "$data/pid" ]] && kill -0 "$(cat "$data/pid")" 2>/dev/null && ready; then
  echo "alertmanager already running (pid $(cat "$data/pid"))" >&2
  echo "$url"
  exit 0
fi
nohup "$bin" --config.file="$here/local.yml" --storage.path="$data/data" \
  --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >"$data/alertmanager.log" 2>&1 &
echo $! >"$data/pid"
for _ in $(seq 1 50); do ready && { echo "alertmanager ready at $url (UI and API v2)" >&2; echo "$url"; exit 0; }; sleep 0.2; done
echo "alertmanager did not become ready; log:" >&2
tail -n 20 "$data/alertmanager.log" >&2
exit 1
