#!/usr/bin/env bash
# First command of the README: install everything, bring the local stack up with one router
# worker, and run a short demo through the whole pipeline. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
# Short windows so the demo's throttled burst turns into a digest within seconds; production
# defaults are an hour (throttle) and 15 minutes (digest). Override by exporting them first.
export NOTIPIPE_THROTTLE_WINDOW_S=${NOTIPIPE_THROTTLE_WINDOW_S:-20}
export NOTIPIPE_DIGEST_WINDOW_S=${NOTIPIPE_DIGEST_WINDOW_S:-10}
.venv/bin/notipipe stack up --with-worker
.venv/bin/notipipe demo
cat <<'NEXT'

The stack and one worker keep running. Next:
  .venv/bin/notipipe stack status            # components and connectors
  .venv/bin/notipipe tail email --from-beginning --timeout 5
  .venv/bin/notipipe send --user alice --category billing --title Hi --body Hello
  .venv/bin/notipipe stack down              # stop everything (data kept)
NEXT
