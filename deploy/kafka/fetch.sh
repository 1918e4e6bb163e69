#!/usr/bin/env bash
# Resolve the Kafka broker jars (see pom.xml) into a cache directory outside
# the git tree and print that directory on stdout.
#
#   ROUTERWATCH_CACHE_DIR  cache root (default: $HOME/.cache/routerwatch)
#
# Idempotent: once a download has completed, a marker file makes later runs
# return immediately.
set -euo pipefail

KAFKA_VERSION=4.1.1
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/pom.xml"
CACHE_DIR="${ROUTERWATCH_CACHE_DIR:-$HOME/.cache/routerwatch}"
LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"
MARKER="$CACHE_DIR/kafka-$KAFKA_VERSION/.fetched"

log() { printf 'fetch.sh: %s\n' "$*" >&2; }

if [[ -f "$MARKER" ]] && compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
  echo "$LIBS"
  exit 0
fi

command -v mvn >/dev/null 2>&1 || { log "mvn not found on PATH (needed to resolve Kafka jars)"; exit 1; }
command -v java >/dev/null 2>&1 || { log "java not found on PATH"; exit 1; }

log "resolving Kafka $KAFKA_VERSION jars into $LIBS (first run only) ..."
# Download into a temporary directory and swap it in, so an interrupted run
# never leaves a half-populated libs dir behind a marker.
mkdir -p "$CACHE_DIR/kafka-$KAFKA_VERSION"
TMP="$(mktemp -d "$CACHE_DIR/kafka-$KAFKA_VERSION/libs.tmp.XXXXXX")"
trap 'rm -rf "$TMP" "$TMP.mvn.log"' EXIT

# Maven's output is kept and shown only when it fails.
if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$TMP" -DincludeScope=runtime >"$TMP.mvn.log" 2>&1; then
  cat "$TMP.mvn.log" >&2
  log "mvn dependency:copy-dependencies failed"
  exit 1
fi

count=$(find "$TMP" -maxdepth 1 -name '*.jar' | wc -l)
if [[ ! -f "$TMP/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
  log "kafka_2.13-$KAFKA_VERSION.jar missing after resolution ($count jars)"
  exit 1
fi

if [[ -f "$MARKER" && -d "$LIBS" ]]; then
  # A concurrent run finished first; keep its copy.
  rm -rf "$TMP"
else
  rm -rf "$LIBS"
  mv "$TMP" "$LIBS"
fi
rm -f "$TMP.mvn.log"
trap - EXIT
date -u +%Y-%m-%dT%H:%M:%SZ > "$MARKER"
log "resolved $count jars"
echo "$LIBS"
