#!/usr/bin/env bash
# `make demo`: local Kafka (unless ROUTERWATCH_KAFKA_BOOTSTRAP is set), migrations on the
# embedded store, `routerwatch serve` in the background, simulated traffic, then the report.
# Safe to run again: the broker and serve are reused, and the simulator's fixed seed gives the
# same event ids, so a second run stores nothing twice.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN="${ROUTERWATCH_RUN_DIR:-.run}"
BIN="${ROUTERWATCH_BIN:-.venv/bin}"
mkdir -p "$RUN"

export ROUTERWATCH_CLICKHOUSE_URL="${ROUTERWATCH_CLICKHOUSE_URL:-chdb://$PWD/$RUN/store}"
export ROUTERWATCH_HTTP__PORT="${ROUTERWATCH_HTTP__PORT:-9464}"
REQUESTS="${DEMO_REQUESTS:-5000}"
SEED="${DEMO_SEED:-7}"
INVALID="${DEMO_INVALID:-12}"
DUPLICATES="${DEMO_DUPLICATES:-100}"

if [[ -z "${ROUTERWATCH_KAFKA_BOOTSTRAP:-}" ]]; then
  ROUTERWATCH_KAFKA_BOOTSTRAP="$(deploy/kafka/start.sh | tail -n 1)"
  export ROUTERWATCH_KAFKA_BOOTSTRAP
fi
echo "$ROUTERWATCH_KAFKA_BOOTSTRAP" >"$RUN/kafka.bootstrap"
if [[ -z "${ROUTERWATCH_SCHEDULER__ALERTMANAGER_URLS:-}" ]]; then
  am_url="$(ALERTMANAGER_DATA_DIR="$RUN/alertmanager" deploy/alertmanager/start.sh | tail -n 1)"
  export ROUTERWATCH_SCHEDULER__ALERTMANAGER_URLS="[\"$am_url\"]"
fi
export ROUTERWATCH_SCHEDULER__STATE_FILE="${ROUTERWATCH_SCHEDULER__STATE_FILE:-$RUN/alerting-state.json}"
echo "== Kafka at $ROUTERWATCH_KAFKA_BOOTSTRAP; store $ROUTERWATCH_CLICKHOUSE_URL; alerts to $ROUTERWATCH_SCHEDULER__ALERTMANAGER_URLS"

# The embedded store can be opened by one process only: migrate before serve holds it.
serve_pid() { [[ -f $RUN/serve.pid ]] && kill -0 "$(cat $RUN/serve.pid)" 2>/dev/null && cat $RUN/serve.pid; }
if ! serve_pid >/dev/null; then
  $BIN/routerwatch migrate
  echo "== starting routerwatch serve (log: $RUN/serve.log)"
  nohup $BIN/routerwatch serve >"$RUN/serve.log" 2>&1 &
  echo $! >"$RUN/serve.pid"
else
  echo "== routerwatch serve already running (pid $(serve_pid))"
fi
healthy() {
  $BIN/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$ROUTERWATCH_HTTP__PORT/health" >/dev/null 2>&1
}
for _ in $(seq 1 90); do
  healthy && break
  serve_pid >/dev/null || { echo "routerwatch serve exited; last log lines:"; tail -n 30 "$RUN/serve.log"; exit 1; }
  sleep 1
done
healthy || { echo "serve did not become healthy; last log lines:"; tail -n 30 "$RUN/serve.log"; exit 1; }

dlq_before="$($BIN/routerwatch dlq --count)"
echo "== simulating $REQUESTS requests (seed $SEED, $INVALID invalid, $DUPLICATES duplicates)"
$BIN/routerwatch simulate --requests "$REQUESTS" --seed "$SEED" --invalid "$INVALID" --duplicates "$DUPLICATES" >"$RUN/simulate.json"
echo "== waiting until ingest has stored or dead-lettered every message"
$BIN/routerwatch wait --timeout 300

valid="$($BIN/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["valid"])' "$RUN/simulate.json")"
router="$($BIN/python -c 'from routerwatch.simulate import Profile; print(Profile().router_id)')"
stored="$($BIN/routerwatch sql "SELECT count() FROM requests WHERE router_id = '$router'")"
dlq_after="$($BIN/routerwatch dlq --count)"
echo
$BIN/routerwatch report
echo "simulator: $valid valid requests, $INVALID invalid, $DUPLICATES duplicates (summary: $RUN/simulate.json)"
echo "stored:    $stored requests from $router (each event_id once)"
echo "DLQ:       $((dlq_after - dlq_before)) message(s) dead-lettered by this run ($dlq_after in total)"
if [[ "$stored" != "$valid" ]] || [[ $((dlq_after - dlq_before)) != "$INVALID" ]]; then
  echo "demo check FAILED: stored/dead-lettered counts differ from what the simulator sent" >&2
  exit 1
fi
cat <<MSG

The services keep running. Explore with, for example:
  .venv/bin/routerwatch sql "SELECT count() FROM requests"
  .venv/bin/routerwatch sql "SELECT * FROM tier_scoreboard(since = '2000-01-01', until = '2100-01-01', by = 'category')" --header
  .venv/bin/routerwatch report --by variant
  .venv/bin/routerwatch report --format html --output report.html
  .venv/bin/routerwatch sql @sql/queries/why_did_escalations_jump.sql --param recent_minutes=15 --param baseline_minutes=120 --header
  .venv/bin/routerwatch dlq
  .venv/bin/routerwatch alerts                      # what the drift detectors have firing
  curl -s http://127.0.0.1:$ROUTERWATCH_HTTP__PORT/metrics | grep routerwatch_
Inject an escalation incident and watch it page in the local Alertmanager: make incident
Stop them with: make stop
MSG
