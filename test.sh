#!/usr/bin/env bash
# The whole test suite: install what is missing, lint, bring the local stack up, run every test.
# Extra arguments go to pytest (e.g. ./test.sh tests/unit -k quiet).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
# Lint first: a style slip fails in a second, before the stack starts.
.venv/bin/ruff check .
.venv/bin/notipipe stack up
set +e
.venv/bin/python -m pytest -p no:cacheprovider -q "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a broken suite, not a pass.
if [[ $rc -eq 5 ]]; then echo "test.sh: no tests were collected" >&2; exit 1; fi
exit $rc
