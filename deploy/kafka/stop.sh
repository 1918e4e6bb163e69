#!/usr/bin/env bash
# Stop the broker started by start.sh for KAFKA_DATA_DIR (default
# <repo>/.run/kafka): SIGTERM, wait up to KAFKA_STOP_TIMEOUT (default 30)
# seconds, then SIGKILL. Safe to run when nothing is running.
#
#   stop.sh          stop the broker, keep its data
#   stop.sh --wipe   stop the broker and delete the whole data dir
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
DATA_DIR="${KAFKA_DATA_DIR:-$REPO_DIR/.run/kafka}"
TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

log() { printf 'stop.sh: %s\n' "$*" >&2; }

WIPE=0
for arg in "$@"; do
  case "$arg" in
    --wipe) WIPE=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) log "unknown argument: $arg (usage: stop.sh [--wipe])"; exit 2 ;;
  esac
done

if [[ ! -d "$DATA_DIR" ]]; then
  log "not running (no data dir $DATA_DIR)"
  exit 0
fi
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
PID_FILE="$DATA_DIR/kafka.pid"
PROPS="$DATA_DIR/server.properties"

# Only signal a process that really is the broker of this data dir, so a
# stale pid file can never take down an unrelated process.
is_our_broker() {
  local pid="$1" args
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  args="$(ps -p "$pid" -o args= 2>/dev/null || true)"
  [[ "$args" == *kafka.Kafka* && "$args" == *"$PROPS"* ]]
}

pid=""
[[ -f "$PID_FILE" ]] && pid="$(cat "$PID_FILE" 2>/dev/null || true)"

if [[ -n "$pid" ]] && is_our_broker "$pid"; then
  log "stopping Kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after ${TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  log "stopped"
else
  log "not running${pid:+ (stale pid $pid)}"
fi
rm -f "$PID_FILE"

if (( WIPE )); then
  log "wiping $DATA_DIR"
  rm -rf "$DATA_DIR"
fi
