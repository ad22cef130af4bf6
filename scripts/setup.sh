#!/usr/bin/env bash
# Install everything the project needs on a Debian machine: system packages, the Python
# virtualenv with the project, and the Java parts from Maven Central. Safe to run again:
# what is already there is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# A JDK, not only a runtime: the project's own Connect plugin (connectors/http-sink) is compiled.
DEBIAN_PACKAGES=(openjdk-17-jdk-headless maven postgresql docker-compose python3-venv)
# The browser of the inbox demo page's test (driven by Playwright, pinned in pyproject's dev extras).
DEBIAN_PACKAGES+=(chromium)

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
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
