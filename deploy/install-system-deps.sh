#!/usr/bin/env bash
# System packages the suite and the demo need: Java 17 and Maven (the local Kafka broker),
# Prometheus's promtool (alert rule tests) and Alertmanager with amtool (the alerting tests
# start a real one), Chromium (the HTML report is checked in a real headless browser).
# Installs the missing ones with apt-get when run as root; otherwise says what to install.
#
# Only what is needed: no recommended packages (Debian's prometheus recommends node-exporter,
# smartmontools, ipmitool...). No services: promtool and Alertmanager come in packages that
# ship a Prometheus server and an Alertmanager service, and Debian's Alertmanager listens on
# :9093 by default. routerwatch runs its own Alertmanager where it chooses (the demo's on
# :9095), so the services of the packages installed here are kept from starting during the
# install (policy-rc.d) and disabled afterwards; a service that was already installed is left
# as it was.
#
# Environment (for a chroot or a test): POLICY_RC_D, the invoke-rc.d policy file
# (default /usr/sbin/policy-rc.d).
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

# The services each package would start, by the names of their init scripts / units.
services=()
for pkg in "${need[@]}"; do
  case "$pkg" in
    prometheus) services+=(prometheus) ;;
    prometheus-alertmanager) services+=(prometheus-alertmanager) ;;
  esac
done

policy="${POLICY_RC_D:-/usr/sbin/policy-rc.d}"
own_policy=0
if [[ ! -e "$policy" ]]; then
  # invoke-rc.d asks this file before starting a service; 101 = "action forbidden".
  printf '#!/bin/sh\n# written by routerwatch deploy/install-system-deps.sh for the duration of one install\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  own_policy=1
fi
remove_policy() { if ((own_policy)); then rm -f "$policy"; fi; }
trap remove_policy EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"

for svc in "${services[@]}"; do
  # Installed, not running and not started at boot: with systemd and with sysvinit alike.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
  if command -v update-rc.d >/dev/null 2>&1; then
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
  if command -v service >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
  echo "install-system-deps: installed $svc without its service (disabled; routerwatch starts its own)" >&2
done
