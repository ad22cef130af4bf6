#!/usr/bin/env bash
# The whole test suite: install what is missing, lint, bring the local stack up, run every test,
# then check that the unit tests catch each removed behaviour (scripts/mutation_check.py).
# Extra arguments go to pytest alone (e.g. ./test.sh tests/unit -k quiet).
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
if [[ $rc -ne 0 || $# -gt 0 ]]; then exit $rc; fi
.venv/bin/python scripts/mutation_check.py
