#!/usr/bin/env bash
# `make canary-break` / `make canary-heal`: flip a switch on the demo's example router and watch
# its canaries page in the local Alertmanager, then resolve. Needs `make demo` first.
#
#   break  raises the router's gate threshold to 0.99: the cheap-tier canaries escalate to the
#          strong tier, and after N of the last M probes (3 of 5, about a minute at the demo's
#          15 s schedule) RouterwatchCanaryTierFlip pages, for each canary and for the cheap side.
#   heal   resets the switches: once the flips leave the N-of-M window the pages resolve.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${ROUTERWATCH_BIN:-.venv/bin}"
ROUTER=example-router
ROUTER_URL="http://127.0.0.1:${EXAMPLE_ROUTER_PORT:-8088}"
AM_URL="${ALERTMANAGER_URL:-http://127.0.0.1:${ALERTMANAGER_PORT:-9095}}"
TIMEOUT="${CANARY_WAIT_S:-240}"

# Prints the router's active canary alerts; exits 0 when the wanted state holds: "paging" once the
# side-wide page is active (each canary pages on its own probe schedule, so the first per-canary page
# comes before enough of a side's canaries have flipped), "clear" once no canary alert is active.
# Only alerts in state "active" count: a per-canary page inhibited by the side-wide one (local.yml),
# or one under a silence, is "suppressed" and listed apart.
alerts() {
  local expect=(--expect-none)
  [[ "$1" == paging ]] && expect=(--expect scope=side)
  "$BIN/python" -m routerwatch.alerting.active "$AM_URL" "router=$ROUTER" \
    --alertname-prefix RouterwatchCanary --what "canary alert" "${expect[@]}"
}

wait_for() {
  local wanted="$1" start=$SECONDS
  until alerts "$wanted" >/dev/null 2>&1; do
    (( SECONDS - start < TIMEOUT )) || { echo "not $wanted after ${TIMEOUT}s" >&2; alerts "$wanted" || true; exit 1; }
    sleep 5
  done
  echo "== $wanted after $((SECONDS - start)) s"
  alerts "$wanted" || true
}

case "${1:-}" in
  break)
    echo "== raising the example router's gate threshold to 0.99 ($ROUTER_URL)"
    "$BIN/routerwatch" example-router switch --url "$ROUTER_URL" gate_threshold=0.99
    echo "== waiting for the canaries to page (N of the last M probes off their expected tier)"
    wait_for paging
    echo "When done: make canary-heal"
    ;;
  heal)
    echo "== resetting the example router's switches"
    "$BIN/routerwatch" example-router switch --url "$ROUTER_URL" --reset
    echo "== waiting for the canary pages to resolve"
    wait_for clear
    ;;
  *) echo "usage: $0 break|heal" >&2; exit 2 ;;
esac
