#!/usr/bin/env bash
# System packages the suite and the demo need: Java 17 and Maven (the local Kafka broker),
# Prometheus's promtool (alert rule tests) and Alertmanager with amtool (the alerting tests
# start a real one), Chromium (the HTML report is checked in a real headless browser).
# Installs the missing ones with apt-get when run as root; otherwise says what to install.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)  # with amtool
if [[ "${1:-}" == "--with-browser" ]]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
((${#need[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "missing system packages: ${need[*]} (install them with apt-get as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}"
