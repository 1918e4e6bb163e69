#!/usr/bin/env bash
# Start a single-node Apache Kafka 4.1.1 broker (KRaft, combined
# broker+controller) on 127.0.0.1, straight from the jars resolved by
# fetch.sh -- no Docker, no tarball.
#
# Environment:
#   KAFKA_PORT             PLAINTEXT listener port          (default 9092)
#   KAFKA_CONTROLLER_PORT  CONTROLLER listener port         (default KAFKA_PORT+10001: 19093,
#                          clear of Alertmanager's default 9093 and 9094)
#   KAFKA_DATA_DIR         config, logs, pid file, data     (default <repo>/.run/kafka)
#   KAFKA_NUM_PARTITIONS   default partitions for new topics (default 1)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness    (default 60)
#   KAFKA_HEAP_OPTS        JVM heap options                 (default -Xmx512m)
#   ROUTERWATCH_CACHE_DIR  jar cache root, see fetch.sh
#
# Optional SASL_SSL listener (unset KAFKA_SASL_SSL_PORT: plaintext only, as always).
# The PLAINTEXT listener stays for the controller and inter-broker traffic.
#   KAFKA_SASL_SSL_PORT           port of a SASL_SSL listener on 127.0.0.1
#   KAFKA_SSL_KEYSTORE            broker keystore (certificate + key) from the caller
#   KAFKA_SSL_KEYSTORE_PASSWORD   its password (also the key's)
#   KAFKA_SSL_KEYSTORE_TYPE       PKCS12 (default) or JKS
#   KAFKA_SSL_TRUSTSTORE          optional: CAs of client certificates (mutual TLS)
#   KAFKA_SSL_TRUSTSTORE_PASSWORD its password
#   KAFKA_SSL_TRUSTSTORE_TYPE     PKCS12 (default) or JKS
#   KAFKA_SSL_CLIENT_AUTH         none (default), requested or required
#   KAFKA_SASL_USERS              "name:password name2:password2": each user can log in
#                                 with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. SCRAM users
#                                 are written at format time (a fresh KAFKA_DATA_DIR).
#                                 Names [A-Za-z0-9._-], passwords [A-Za-z0-9._@%+-].
#
# `start.sh --print-ports` prints the ports it would listen on (name=port lines) and exits.
#
# Idempotent: if the broker of this data dir is already up, says so and
# exits 0. On success the last line of stdout is the bootstrap address
# (127.0.0.1:PORT); all other messages go to stderr.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"

PORT="${KAFKA_PORT:-9092}"
# Not KAFKA_PORT+1: that is 9093, where Alertmanager (and Debian's prometheus-alertmanager
# service) listens by default. PORT-1 when PORT+10001 is out of range.
default_cport=$((PORT + 10001))
((default_cport <= 65535)) || default_cport=$((PORT - 1))
CPORT="${KAFKA_CONTROLLER_PORT:-$default_cport}"
DATA_DIR="${KAFKA_DATA_DIR:-$REPO_DIR/.run/kafka}"
NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-1}"
TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m}"
HOST=127.0.0.1

log() { printf 'start.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for v in PORT CPORT NUM_PARTITIONS TIMEOUT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number (got '${!v}')"
done
[[ "$PORT" != "$CPORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"

SASL_PORT="${KAFKA_SASL_SSL_PORT:-}"
SASL_USERS=()
if [[ -n "$SASL_PORT" ]]; then
  [[ "$SASL_PORT" =~ ^[0-9]+$ ]] || die "KAFKA_SASL_SSL_PORT must be a number (got '$SASL_PORT')"
  [[ "$SASL_PORT" != "$PORT" && "$SASL_PORT" != "$CPORT" ]] || die "KAFKA_SASL_SSL_PORT must differ from the other ports"
  [[ -f "${KAFKA_SSL_KEYSTORE:-}" ]] || die "KAFKA_SASL_SSL_PORT needs KAFKA_SSL_KEYSTORE (a readable keystore file)"
  [[ -n "${KAFKA_SSL_KEYSTORE_PASSWORD:-}" ]] || die "KAFKA_SASL_SSL_PORT needs KAFKA_SSL_KEYSTORE_PASSWORD"
  if [[ -n "${KAFKA_SSL_TRUSTSTORE:-}" ]]; then
    [[ -f "$KAFKA_SSL_TRUSTSTORE" ]] || die "KAFKA_SSL_TRUSTSTORE: no such file $KAFKA_SSL_TRUSTSTORE"
  fi
  case "${KAFKA_SSL_CLIENT_AUTH:-none}" in none|requested|required) ;; *) die "KAFKA_SSL_CLIENT_AUTH: none, requested or required" ;; esac
  read -r -a SASL_USERS <<< "${KAFKA_SASL_USERS:-}"
  (( ${#SASL_USERS[@]} > 0 )) || die "KAFKA_SASL_SSL_PORT needs KAFKA_SASL_USERS (\"name:password ...\")"
  for entry in "${SASL_USERS[@]}"; do
    [[ "$entry" =~ ^[A-Za-z0-9._-]+:[A-Za-z0-9._@%+-]+$ ]] \
      || die "KAFKA_SASL_USERS: '${entry%%:*}:...' is not name:password (names [A-Za-z0-9._-], passwords [A-Za-z0-9._@%+-])"
  done
fi
if [[ "${1:-}" == "--print-ports" ]]; then
  printf 'plaintext=%s\ncontroller=%s\n' "$PORT" "$CPORT"
  [[ -z "$SASL_PORT" ]] || printf 'sasl_ssl=%s\n' "$SASL_PORT"
  exit 0
fi
command -v java >/dev/null 2>&1 || die "java not found on PATH (Java 17+ required)"

mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
PROPS="$DATA_DIR/server.properties"
PID_FILE="$DATA_DIR/kafka.pid"
LOG_FILE="$DATA_DIR/kafka.log"
OUT_FILE="$DATA_DIR/kafka.out"
LOG_DIRS="$DATA_DIR/logs"

# Readiness is "port accepts TCP" AND this line appears in the log.
# Kafka 4.1.1 logs: "[KafkaRaftServer nodeId=1] Kafka Server started (kafka.server.KafkaRaftServer)"
READY_PATTERN='Kafka Server started'

port_open() {  # port_open PORT -> 0 when something accepts TCP on HOST:PORT
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

pid_alive() {  # pid_alive PID -> 0 when PID is our broker (kafka.Kafka with our config)
  local pid="$1" args
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  args="$(ps -p "$pid" -o args= 2>/dev/null || true)"
  [[ "$args" == *kafka.Kafka* && "$args" == *"$PROPS"* ]]
}

print_log_tail() {
  local f
  for f in "$LOG_FILE" "$OUT_FILE"; do
    if [[ -s "$f" ]]; then
      log "---- last 30 lines of $f ----"
      tail -n 30 "$f" >&2
    fi
  done
}

# wait_ready PID LOG_OFFSET: wait until the port answers and the ready line
# was logged after byte LOG_OFFSET of the log file.
wait_ready() {
  local pid="$1" offset="$2" deadline=$((SECONDS + TIMEOUT))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker process $pid exited during startup"
      rm -f "$PID_FILE"
      print_log_tail
      exit 1
    fi
    if port_open "$PORT" && [[ -f "$LOG_FILE" ]] \
        && tail -c +"$((offset + 1))" "$LOG_FILE" | grep -q "$READY_PATTERN"; then
      return 0
    fi
    sleep 0.5
  done
  log "timed out after ${TIMEOUT}s waiting for Kafka on $HOST:$PORT (pid $pid still running; stop it with stop.sh)"
  print_log_tail
  exit 1
}

# --- already running? -------------------------------------------------------
if [[ -f "$PID_FILE" ]]; then
  old_pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  if pid_alive "$old_pid"; then
    if port_open "$PORT"; then
      log "already running (pid $old_pid) on $HOST:$PORT"
      echo "$HOST:$PORT"
      exit 0
    fi
    log "broker pid $old_pid is alive but $HOST:$PORT does not answer yet; waiting"
    wait_ready "$old_pid" 0
    log "ready (pid $old_pid)"
    echo "$HOST:$PORT"
    exit 0
  fi
  log "removing stale pid file (pid '${old_pid}' not running)"
  rm -f "$PID_FILE"
fi

for p in "$PORT" "$CPORT" $SASL_PORT; do
  if port_open "$p"; then
    die "port $HOST:$p is already in use by another process; set KAFKA_PORT / KAFKA_CONTROLLER_PORT"
  fi
done

# --- jars -------------------------------------------------------------------
LIBS="$("$SCRIPT_DIR/fetch.sh" | tail -n 1)"
[[ -d "$LIBS" ]] || die "fetch.sh did not return a libs directory"
CP="$LIBS/*"
LOG4J_OPTS=(-Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.yaml" -Dkafka.logs.dir="$DATA_DIR")

# --- config (regenerated on every start) ------------------------------------
cat > "$PROPS" <<PROPS
# Generated by deploy/kafka/start.sh -- edits are overwritten on next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$LOG_DIRS
num.partitions=$NUM_PARTITIONS
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
PROPS

SCRAM_ARGS=()
if [[ -n "$SASL_PORT" ]]; then
  L=listener.name.sasl_ssl
  plain_users=""
  for entry in "${SASL_USERS[@]}"; do
    name="${entry%%:*}" password="${entry#*:}"
    plain_users+=" user_$name=\"$password\""
    SCRAM_ARGS+=(--add-scram "SCRAM-SHA-256=[name=$name,password=$password]")
    SCRAM_ARGS+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$password]")
  done
  # The listener lines replace the plaintext-only ones above (later keys win).
  {
    echo "listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT,SASL_SSL://$HOST:$SASL_PORT"
    echo "advertised.listeners=PLAINTEXT://$HOST:$PORT,SASL_SSL://$HOST:$SASL_PORT"
    echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    echo "$L.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    echo "$L.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;"
    echo "$L.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "$L.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "$L.ssl.keystore.location=$KAFKA_SSL_KEYSTORE"
    echo "$L.ssl.keystore.password=$KAFKA_SSL_KEYSTORE_PASSWORD"
    echo "$L.ssl.key.password=$KAFKA_SSL_KEYSTORE_PASSWORD"
    echo "$L.ssl.keystore.type=${KAFKA_SSL_KEYSTORE_TYPE:-PKCS12}"
    echo "$L.ssl.client.auth=${KAFKA_SSL_CLIENT_AUTH:-none}"
    if [[ -n "${KAFKA_SSL_TRUSTSTORE:-}" ]]; then
      echo "$L.ssl.truststore.location=$KAFKA_SSL_TRUSTSTORE"
      echo "$L.ssl.truststore.password=${KAFKA_SSL_TRUSTSTORE_PASSWORD:-}"
      echo "$L.ssl.truststore.type=${KAFKA_SSL_TRUSTSTORE_TYPE:-PKCS12}"
    fi
  } >> "$PROPS"
  chmod 600 "$PROPS"  # it holds the PLAIN passwords and the keystore password
fi

# --- format storage once ----------------------------------------------------
if [[ -f "$LOG_DIRS/meta.properties" ]]; then
  log "storage already formatted ($LOG_DIRS)"
  (( ${#SCRAM_ARGS[@]} == 0 )) || log "SCRAM users are only written at format time: KAFKA_SASL_USERS' SCRAM credentials are those of the first start"
else
  log "formatting storage in $LOG_DIRS"
  cluster_id="$(java "${LOG4J_OPTS[@]}" -cp "$CP" kafka.tools.StorageTool random-uuid | tail -n 1)"
  [[ -n "$cluster_id" ]] || die "could not generate a cluster id"
  # No --standalone: controller.quorum.voters (static quorum) is set.
  if ! java "${LOG4J_OPTS[@]}" -cp "$CP" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$PROPS" ${SCRAM_ARGS[@]+"${SCRAM_ARGS[@]}"} >&2; then
    die "kafka.tools.StorageTool format failed"
  fi
fi

# --- launch -----------------------------------------------------------------
log_offset=0
[[ -f "$LOG_FILE" ]] && log_offset="$(wc -c < "$LOG_FILE" | tr -d ' ')"

log "starting Kafka on $HOST:$PORT (controller $HOST:$CPORT, data $DATA_DIR)"
# shellcheck disable=SC2086,SC2016  # HEAP_OPTS is word-split on purpose; $$ expands in the child
nohup setsid bash -c 'echo $$ > "$0"; exec "$@"' "$PID_FILE" \
  java $HEAP_OPTS "${LOG4J_OPTS[@]}" -cp "$CP" kafka.Kafka "$PROPS" \
  >"$OUT_FILE" 2>&1 </dev/null &
launcher=$!

# The pid file is written by the detached child just before exec'ing java.
for _ in $(seq 1 50); do
  [[ -s "$PID_FILE" ]] && break
  sleep 0.1
done
[[ -s "$PID_FILE" ]] || { kill "$launcher" 2>/dev/null || true; die "broker did not write $PID_FILE"; }
pid="$(cat "$PID_FILE")"

wait_ready "$pid" "$log_offset"
log "ready after ${SECONDS}s (pid $pid, log $LOG_FILE)"
[[ -z "$SASL_PORT" ]] || log "SASL_SSL listener on $HOST:$SASL_PORT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
echo "$HOST:$PORT"
