#!/usr/bin/env bash
# `make stop`: stop the demo's serve, example router, Alertmanager and local Kafka broker. Safe when nothing runs, safe twice.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN="${ROUTERWATCH_RUN_DIR:-.run}"
# stop_pidfile FILE WHAT GRACE_S: SIGTERM the process in FILE, SIGKILL it after GRACE_S, drop FILE.
stop_pidfile() {
  local file="$1" what="$2" grace="$3" pid
  [[ -f $file ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 "$grace"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $what (pid $pid)"
  fi
  rm -f "$file"
}
stop_pidfile "$RUN/serve.pid" "routerwatch serve" 30
stop_pidfile "$RUN/router.pid" "the example router" 15
ALERTMANAGER_DATA_DIR="$RUN/alertmanager" deploy/alertmanager/stop.sh
# A broker given by ROUTERWATCH_KAFKA_BOOTSTRAP is not ours to stop.
[[ -n "${ROUTERWATCH_KAFKA_BOOTSTRAP:-}" ]] || deploy/kafka/stop.sh
