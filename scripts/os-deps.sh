#!/usr/bin/env bash
# Installs the OS packages some tests need: a PostgreSQL server (fleet-server tests run against it as well
# as SQLite) and Debian's Chromium (dashboard page test). Quietly does nothing when they are present, when
# not root, or when apt-get is missing: the tests that need them then skip with a reason.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
# nginx: a plain static web server as an untrusted target mirror (tests/integration/fleet/test_mirrors.py);
# wrk: the load generator of benchmarks/fleet_load.py
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "os-deps: ${need[*]} missing and cannot be installed here (not root or no apt-get); those tests will skip." >&2
  exit 0
fi
echo "os-deps: installing ${need[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
(apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null) \
  || echo "os-deps: apt-get failed; tests needing ${need[*]} will skip." >&2
exit 0
