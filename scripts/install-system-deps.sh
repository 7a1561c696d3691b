#!/usr/bin/env bash
# Debian packages the tests and benchmarks need: redis-server (shared cache tier; also run as a
# Cluster and as Sentinel) and redis-cli (redis-tools: creates the test cluster), wrk and h2load
# (nghttp2-client; HTTP load generators). Installed only when missing. Output contracts compile
# with buf from node_modules, not a system protoc.
# Optional groups, named as arguments, for the operations tests only (large packages, installed by
# the tests that need them on first use, or ahead with `make ops-deps`):
#   promtool  the Debian `prometheus` package (promtool checks metrics and alert rules)
#   browser   the Debian `chromium-headless-shell` (renders the status page; no GTK stack)
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
for group in "$@"; do
  case "$group" in
    promtool) command -v promtool >/dev/null 2>&1 || need+=(prometheus) ;;
    browser) command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 || need+=(chromium-headless-shell) ;;
    *) echo "unknown group: $group (expected: promtool, browser)" >&2; exit 2 ;;
  esac
done
if [ "${#need[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root or install them: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# The prometheus package would start its server as a service; nothing here wants that.
if [ -d /run/systemd/system ] || [ -x /usr/sbin/policy-rc.d ]; then :; else
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
