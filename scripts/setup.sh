#!/usr/bin/env bash
# Install everything the project needs on a Debian machine: system packages, the Python
# virtualenv with the project, and the Java parts from Maven Central. Safe to run again:
# what is already there is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# A JDK, not only a runtime: the project's own Connect plugin (connectors/http-sink) is compiled.
# openssl makes the local stack's CA and the broker's certificate (stack/tls.py).
DEBIAN_PACKAGES=(openjdk-17-jdk-headless maven postgresql docker-compose python3-venv openssl)
# Monitoring: Prometheus (with promtool), Alertmanager and the PostgreSQL exporter run as plain
# processes of the stack; chromium is the browser of the dashboard's and the inbox page's tests.
MONITORING_SERVICES=(prometheus prometheus-alertmanager prometheus-postgres-exporter)
DEBIAN_PACKAGES+=("${MONITORING_SERVICES[@]}" chromium)
# What cargo needs to build the lag exporter (klag-exporter, with librdkafka inside).
DEBIAN_PACKAGES+=(build-essential pkg-config cmake libsasl2-dev libzstd-dev liblz4-dev libcurl4-openssl-dev libssl-dev)
KLAG_EXPORTER_VERSION=0.1.29

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# A JDK from elsewhere (e.g. a preinstalled Temurin) is as good as Debian's.
if command -v javac >/dev/null && javac -version 2>&1 | grep -qE 'javac (1[7-9]|2[0-9])'; then
  missing=("${missing[@]/openjdk-17-jdk-headless}")
fi
command -v mvn >/dev/null && missing=("${missing[@]/maven}")
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  # Debian starts Prometheus (9090), Alertmanager (9093, the default broker's controller port)
  # and the exporter as services on install; the stack runs its own, so none may start.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && made_policy=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
  [[ -n $made_policy ]] && $SUDO rm -f "$policy"
fi
# Where systemd runs, keep the packages' own services stopped and disabled (they may have been
# installed before this script ran).
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  for service in "${MONITORING_SERVICES[@]}"; do
    if systemctl is-enabled --quiet "$service" 2>/dev/null || systemctl is-active --quiet "$service" 2>/dev/null; then
      echo "setup: stopping and disabling Debian's $service service (the stack runs its own)"
      $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
fi

# The consumer-lag exporter, built once from crates.io into .cache/tools (about 3 minutes).
klag=.cache/tools/bin/klag-exporter
if [[ ! -x $klag ]] || [[ $("$klag" --version 2>/dev/null) != "klag-exporter $KLAG_EXPORTER_VERSION" ]]; then
  command -v cargo >/dev/null || { echo "setup: cargo not found: install a Rust toolchain (rustup) to build klag-exporter" >&2; exit 1; }
  echo "setup: building klag-exporter $KLAG_EXPORTER_VERSION with cargo into .cache/tools (a few minutes, once)"
  mkdir -p .cache/tools
  cargo install klag-exporter --version "$KLAG_EXPORTER_VERSION" --locked --root .cache/tools --quiet
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# The locked set (requirements.lock, with hashes: a fresh machine installs exactly these), then
# the project itself without resolving anything again. scripts/lock.sh regenerates the lock.
stamp=.venv/.installed-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
if [[ ! -f $stamp ]]; then
  echo "setup: installing the locked Python packages into .venv"
  .venv/bin/pip install -q --require-hashes -r requirements.lock
  .venv/bin/pip install -q --no-deps -e .
  rm -f .venv/.installed-* && touch "$stamp"
fi

echo "setup: resolving Java parts from Maven Central into .cache/dist"
.venv/bin/python -c "from stack.artifacts import resolve_all; from stack.settings import StackSettings; resolve_all(StackSettings.from_env())"
echo "setup: done"
