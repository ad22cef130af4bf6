#!/usr/bin/env bash
# Regenerate requirements.lock (every Python package, exact versions with hashes) from
# pyproject.toml, after changing a dependency there. pip-tools runs from its own venv in .cache.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.cache/tools/lockenv
[[ -x $tools/bin/pip-compile ]] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q pip-tools==7.7.0; }
"$tools/bin/pip-compile" -q --generate-hashes --allow-unsafe --strip-extras --extra dev --extra bench \
  --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
echo "requirements.lock regenerated; scripts/setup.sh installs it"
