#!/usr/bin/env bash
# `make stop`: stop the demo's serve, example router, Alertmanager and local Kafka broker. Safe when nothing runs, safe twice.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN="${ROUTERWATCH_RUN_DIR:-.run}"
if [[ -f $RUN/serve.pid ]]; then
  pid="$(cat $RUN/serve.pid)"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped routerwatch serve (pid $pid)"
  fi
  rm -f "$RUN/serve.pid"
fi
if [[ -f $RUN/router.pid ]]; then
  pid="$(cat $RUN/router.pid)"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 15); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped the example router (pid $pid)"
  fi
  rm -f "$RUN/router.pid"
fi
ALERTMANAGER_DATA_DIR="$RUN/alertmanager" deploy/alertmanager/stop.sh
# A broker given by ROUTERWATCH_KAFKA_BOOTSTRAP is not ours to stop.
[[ -n "${ROUTERWATCH_KAFKA_BOOTSTRAP:-}" ]] || deploy/kafka/stop.sh
