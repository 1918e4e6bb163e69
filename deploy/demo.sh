#!/usr/bin/env bash
# `make demo`: local Kafka (unless ROUTERWATCH_KAFKA_BOOTSTRAP is set), migrations on the
# embedded store, the example router and `routerwatch serve` (ingest, drift detectors, canary
# probes of the example router) in the background, simulated traffic, then the report.
# Safe to run again, at any later time: the broker and serve are reused, and the simulated traffic
# is anchored to a timeline kept in $RUN/simulate.start (the hour before the first run), so every
# run sends byte-identical events (same seed, same event ids, same times): ingest recognises a
# re-run as copies and stores nothing twice. The anchor lives next to the embedded store: `make
# clean` removes both. (With an external store, keep $RUN or set DEMO_START to the first run's.)
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
# Canaries: the example set probes the example router every 15 s; the detectors run every 15 s
# too so that a broken router pages within a minute or so (production: every 60 s).
ROUTER_PORT="${EXAMPLE_ROUTER_PORT:-8088}"
export ROUTERWATCH_CANARY__FILES="${ROUTERWATCH_CANARY__FILES:-[\"$PWD/deploy/canaries/example.yml\"]}"
export ROUTERWATCH_CANARY__ROUTER_URL="${ROUTERWATCH_CANARY__ROUTER_URL:-http://127.0.0.1:$ROUTER_PORT/v1/chat/completions}"
export ROUTERWATCH_CANARY__STATE_FILE="${ROUTERWATCH_CANARY__STATE_FILE:-$RUN/canary-schedule.json}"
export ROUTERWATCH_SCHEDULER__INTERVAL_S="${ROUTERWATCH_SCHEDULER__INTERVAL_S:-15}"
echo "== Kafka at $ROUTERWATCH_KAFKA_BOOTSTRAP; store $ROUTERWATCH_CLICKHOUSE_URL; alerts to $ROUTERWATCH_SCHEDULER__ALERTMANAGER_URLS"

router_pid() { [[ -f $RUN/router.pid ]] && kill -0 "$(cat $RUN/router.pid)" 2>/dev/null && cat $RUN/router.pid; }
if ! router_pid >/dev/null; then
  echo "== starting the example router on port $ROUTER_PORT (log: $RUN/router.log)"
  nohup $BIN/routerwatch example-router --port "$ROUTER_PORT" --router-id example-router >"$RUN/router.log" 2>&1 &
  echo $! >"$RUN/router.pid"
else
  echo "== example router already running (pid $(router_pid))"
fi

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

# The first run's timeline is the hour before it (recent: the report's default 24 h window, the
# detectors and the cookbook's "last N minutes" see it); later runs replay that same hour.
if [[ -n "${DEMO_START:-}" ]]; then
  START="$DEMO_START"
elif [[ -s $RUN/simulate.start ]]; then
  START="$(cat "$RUN/simulate.start")"
else
  START="$($BIN/python -c 'import datetime as d; from routerwatch.simulate import Profile
t = d.datetime.now(d.timezone.utc).replace(microsecond=0) - d.timedelta(minutes=Profile().minutes)
print(t.strftime("%Y-%m-%dT%H:%M:%SZ"))')"
  echo "$START" >"$RUN/simulate.start"
fi

dlq_before="$($BIN/routerwatch dlq --count)"
echo "== simulating $REQUESTS requests (seed $SEED, $INVALID invalid, $DUPLICATES duplicates) from $START (anchor: $RUN/simulate.start)"
$BIN/routerwatch simulate --requests "$REQUESTS" --seed "$SEED" --invalid "$INVALID" --duplicates "$DUPLICATES" \
  --start "$START" >"$RUN/simulate.json"
echo "== waiting until ingest has stored or dead-lettered every message"
$BIN/routerwatch wait --timeout 300

valid="$($BIN/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["valid"])' "$RUN/simulate.json")"
router="$($BIN/python -c 'from routerwatch.simulate import Profile; print(Profile().router_id)')"
stored="$($BIN/routerwatch sql "SELECT count() FROM requests WHERE router_id = '$router'")"
distinct="$($BIN/routerwatch sql "SELECT uniqExact(event_id) FROM requests WHERE router_id = '$router'")"
dlq_after="$($BIN/routerwatch dlq --count)"
echo "== waiting for the first canary probe of every canary in the example set"
canaries="$($BIN/routerwatch canary check | tail -n 1 | cut -d' ' -f1)"
for _ in $(seq 1 60); do
  probed="$($BIN/routerwatch sql "SELECT uniqExact(canary_id) FROM canary_results WHERE router_id = 'example-router'")"
  [[ "$probed" -ge "$canaries" ]] && break
  sleep 1
done
canary_bad="$($BIN/routerwatch sql "SELECT countIf(error != '' OR NOT answer_passed OR observed_tier != expected_tier) FROM canary_results FINAL WHERE router_id = 'example-router' AND occurred_at > now() - INTERVAL 2 MINUTE")"
# A re-run days later: widen the report's window (default: the last 24 h) back to the replayed hour.
report_args=()
if [[ "$($BIN/python -c 'import datetime as d, sys
t = d.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00"))
print(int(d.datetime.now(d.timezone.utc) - t > d.timedelta(hours=23)))' "$START")" == 1 ]]; then
  report_args=(--since "$START")
fi
echo
$BIN/routerwatch report ${report_args[@]+"${report_args[@]}"}
echo "simulator: $valid valid requests, $INVALID invalid, $DUPLICATES duplicates (summary: $RUN/simulate.json)"
if [[ "$distinct" == "$stored" ]]; then
  echo "stored:    $stored requests from $router (each event_id once)"
else
  echo "stored:    $stored requests from $router ($distinct distinct event_ids: some stored more than once)"
fi
echo "DLQ:       $((dlq_after - dlq_before)) message(s) dead-lettered by this run ($dlq_after in total)"
echo "canaries:  $probed of $canaries canaries probed; $canary_bad bad probe(s) in the last 2 minutes"
if [[ "$stored" != "$valid" ]] || [[ "$distinct" != "$stored" ]] || [[ $((dlq_after - dlq_before)) != "$INVALID" ]]; then
  echo "demo check FAILED: stored/dead-lettered counts differ from what the simulator sent (another DEMO_SEED, DEMO_REQUESTS or anchor against this store adds requests of its own)" >&2
  exit 1
fi
if [[ "$probed" -lt "$canaries" ]] || [[ "$canary_bad" != 0 ]]; then
  echo "demo check FAILED: the healthy example router should pass every canary (log: $RUN/serve.log)" >&2
  exit 1
fi
# The console's URL and a request of this run to search for in it (one that escalated: several attempts).
demo_request="$($BIN/routerwatch sql "SELECT request_id FROM attempts FINAL WHERE router_id = '$router' GROUP BY request_id ORDER BY countIf(outcome = 'escalated') = 0, request_id LIMIT 1")"
console_url="http://127.0.0.1:$ROUTERWATCH_HTTP__PORT/"
console_open="$console_url"
if [[ -n "${ROUTERWATCH_HTTP__TOKEN:-}" ]]; then
  # The token is not printed: the page takes it once from the fragment and keeps it out of the address bar.
  console_open="${console_url}#token=<ROUTERWATCH_HTTP__TOKEN's value>"
fi
cat <<MSG

The services keep running. Explore with, for example:
  .venv/bin/routerwatch sql "SELECT count() FROM requests"
  .venv/bin/routerwatch sql "SELECT * FROM tier_scoreboard(since = '2000-01-01', until = '2100-01-01', by = 'category')" --header
  .venv/bin/routerwatch report --by variant
  .venv/bin/routerwatch report --format html --output report.html
  .venv/bin/routerwatch cookbook                    # the on-call queries, with the question each answers
  .venv/bin/routerwatch cookbook why_did_escalations_jump --since 15m --baseline-since 120m
  .venv/bin/routerwatch dlq
  .venv/bin/routerwatch alerts                      # what the drift detectors have firing
  curl -s http://127.0.0.1:$ROUTERWATCH_HTTP__PORT/metrics | grep routerwatch_
  .venv/bin/routerwatch cookbook canary_health --since 60m
Break the example router and watch its canaries page in the local Alertmanager:
  make canary-break      # raises its gate threshold: cheap-tier canaries escalate (tier flip page)
  make canary-heal       # restores it: the page resolves
  (other switches: .venv/bin/routerwatch example-router switch --url http://127.0.0.1:$ROUTER_PORT verifier=reject_all | down=true)
Inject an escalation incident and watch it page in the local Alertmanager: make incident
Stop them with: make stop

The on-call console: what fires now (make incident's page shows there within a detector tick,
${ROUTERWATCH_SCHEDULER__INTERVAL_S} s; reload the page), escalation, latency and cost, canaries, a request's attempts.
A demo request to search for in it: $demo_request (or open ${console_url}#id=$demo_request)
Console: $console_open
MSG
