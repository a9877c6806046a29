#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, trust auth for local connections) and NATS with
# JetStream (127.0.0.1:4222) run: installs them from Debian's packages when missing, starts
# them when stopped. Sourced by scripts/test and scripts/run-nmp; safe to run again.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "error: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

ensure_postgres() {
  if port_open 5432; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # Local development and tests connect as postgres without a password.
    local hba
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n 1)
    as_root sed -i -E 's/^(local|host)(\s+all\s+all\s+.*\s)(peer|md5|scram-sha-256)$/\1\2trust/' "$hba"
    as_root sed -i -E 's/^(local\s+all\s+postgres\s+)peer$/\1trust/' "$hba"
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for_port 5432 PostgreSQL
}

ensure_nats() {
  if port_open 4222; then return 0; fi
  if ! command -v nats-server >/dev/null 2>&1; then
    echo "installing nats-server from Debian's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  fi
  local store=/var/lib/nats-server
  as_root mkdir -p "$store"
  echo "starting NATS with JetStream"
  as_root start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd "$store" -l /var/log/nats-server.log
  wait_for_port 4222 NATS
}

ensure_rust_tools() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest from crates.io"
    cargo install cargo-nextest --locked
  fi
}

# The browser tests drive headless Chromium through chromedriver and check each page with
# axe-core: installs Debian's chromium and chromium-driver, and axe-core (tests/browser, from its
# package-lock.json) when missing, so that nothing is downloaded while the tests run.
ensure_browser() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "installing chromium and chromium-driver from Debian's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ ! -f "$here/tests/browser/node_modules/axe-core/axe.min.js" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "installing npm from Debian's packages"
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    fi
    echo "installing axe-core for the browser tests"
    (cd "$here/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
