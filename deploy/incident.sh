#!/usr/bin/env bash
# `make incident` / `make incident-end`: inject an escalation incident into the running demo and
# watch it page in the local Alertmanager, then resolve. Needs `make demo` first.
#
# The traffic is placed in the past with the simulator (a replay), so the whole story takes
# seconds instead of hours:
#   [now-6h, now-4h)  normal traffic of router "incident-router" -> a frozen baseline is learned
#   [now-4h, now-3h)  the small tier's gate breaks: its escalation rate jumps to 60%
#   [now-3h, now)     (incident-end) normal traffic again: the CUSUM falls back and the page resolves
# The detectors are then run live (as of now, over their lookback): a run as of a past minute is a
# dry run that changes no page. The `routerwatch` commands send ROUTERWATCH_HTTP__TOKEN when set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${ROUTERWATCH_BIN:-.venv/bin}"
RUN="${ROUTERWATCH_RUN_DIR:-.run}"
ROUTER=incident-router
AM_URL="${ALERTMANAGER_URL:-http://127.0.0.1:${ALERTMANAGER_PORT:-9095}}"
if [[ -z "${ROUTERWATCH_KAFKA_BOOTSTRAP:-}" && -f "$RUN/kafka.bootstrap" ]]; then
  ROUTERWATCH_KAFKA_BOOTSTRAP="$(cat "$RUN/kafka.bootstrap")"
  export ROUTERWATCH_KAFKA_BOOTSTRAP
fi
rw() { "$BIN/routerwatch" "$@"; }

# Only alerts in state "active" are counted: one a silence or an inhibition suppresses is listed apart.
show_alertmanager() {
  "$BIN/python" -m routerwatch.alerting.active "$AM_URL" "router=$ROUTER" --runbook
}

case "${1:-start}" in
  start)
    echo "== normal traffic for $ROUTER, 6h to 4h ago"
    rw simulate --router-id "$ROUTER" --requests 12000 --minutes 120 --end 240m --seed 101 >/dev/null
    rw wait --timeout 300
    echo "== freezing baselines from that window"
    rw baseline learn --hours 2 --until 240m
    echo "== incident: the small tier's gate rejects 60% of answers, 4h to 3h ago"
    rw simulate --router-id "$ROUTER" --requests 6000 --minutes 60 --end 180m --seed 102 --escalation small=0.6 >/dev/null
    rw wait --timeout 300
    echo "== detectors as of the end of the incident (a dry run: what they said then)"
    rw alerts --evaluate --at 180m
    echo "== detectors now (live): the CUSUM has seen no recovery yet, so the page is raised"
    rw alerts --evaluate
    sleep 6  # the demo Alertmanager's group_wait
    show_alertmanager
    if command -v amtool >/dev/null; then
      echo "== amtool alert query --alertmanager.url=$AM_URL router=$ROUTER"
      amtool alert query --alertmanager.url="$AM_URL" "router=$ROUTER" || true
    fi
    echo
    echo "Debian's Alertmanager ships without its web UI: use the API above, amtool, or a UI build"
    echo "pointed at $AM_URL. When done: make incident-end"
    ;;
  end)
    echo "== recovery: normal traffic for $ROUTER over the last 3h"
    rw simulate --router-id "$ROUTER" --requests 18000 --minutes 180 --end 1m --seed 103 >/dev/null
    rw wait --timeout 300
    rw alerts --evaluate
    sleep 2
    show_alertmanager
    ;;
  *) echo "usage: $0 [start|end]" >&2; exit 2 ;;
esac
