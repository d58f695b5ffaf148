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
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "os-deps: ${need[*]} missing and cannot be installed here (not root or no apt-get); those tests will skip." >&2
  else
    echo "os-deps: installing ${need[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null) \
      || echo "os-deps: apt-get failed; tests needing ${need[*]} will skip." >&2
  fi
fi

# --- software Vulkan device (GPU tests: LiteRT's WebGPU accelerator on Mesa llvmpipe) -----------------
# Dawn needs Mesa >= 25; Debian 12 ships 22.3 ("No adapters found"), so mesa-vulkan-drivers comes from
# the <codename>-backports suite. The backports source is a copy of the machine's own Debian source
# (deb822 .sources stanza or one-line entry) with only the suite changed: no mirror host is written here.
mesa_major() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/'; }
backports_deb822() {  # prints a deb822 stanza for "$1-backports" copied from the first one using suite $1
  local codename=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: paragraphs split by blank lines; copy the first whose Suites list holds the codename
    awk -v c="$codename" 'BEGIN { RS = ""; FS = "\n" }
      { hit = 0
        for (i = 1; i <= NF; i++) if ($i ~ /^Suites:/) { m = split($i, S, /[ \t]+/); for (j = 2; j <= m; j++) if (S[j] == c) hit = 1 }
        if (!hit) next
        for (i = 1; i <= NF; i++) { if ($i ~ /^Suites:/) $i = "Suites: " c "-backports"; if ($i !~ /^#/) print $i }
        exit 0 }' "$f" | grep . && return 0
  done
  return 1
}
backports_oneline() {  # the same for one-line sources.list entries
  local codename=$1 f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # one-line: deb [options] URI SUITE COMPONENTS...
    awk -v c="$codename" '$1 == "deb" { s = 3; if ($2 ~ /^\[/) { for (s = 2; s <= NF && $s !~ /\]$/; s++); s += 2 }
        if ($s == c) { $s = c "-backports"; print; exit 0 } }' "$f" | grep . && return 0
  done
  return 1
}
mesa=$(mesa_major)
if [ "$(uname -s)" = Linux ] && { [ -z "$mesa" ] || [ "$mesa" -lt 25 ]; }; then
  codename=$( . /etc/os-release 2>/dev/null; [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}" )
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || [ -z "$codename" ]; then
    echo "os-deps: mesa-vulkan-drivers >= 25 missing and cannot be installed here (needs root, apt-get, Debian); GPU tests will skip." >&2
  else
    list=/etc/apt/sources.list.d/liteship-${codename}-backports
    if ! grep -rqs -- "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      if backports_deb822 "$codename" >"$list.sources"; then
        echo "os-deps: added ${codename}-backports ($list.sources, copied from the machine's Debian source)"
      elif rm -f "$list.sources" && backports_oneline "$codename" >"$list.list"; then
        echo "os-deps: added ${codename}-backports ($list.list, copied from the machine's Debian source)"
      else
        rm -f "$list.list"
        echo "os-deps: no Debian apt source for suite $codename found to copy; GPU tests will skip." >&2
      fi
    fi
    echo "os-deps: installing mesa-vulkan-drivers from ${codename}-backports"
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -qq && apt-get install -y -qq --no-install-recommends -t "${codename}-backports" \
        mesa-vulkan-drivers libvulkan1 >/dev/null) \
      || echo "os-deps: installing mesa-vulkan-drivers failed; GPU tests will skip." >&2
  fi
fi
exit 0
