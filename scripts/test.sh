#!/usr/bin/env bash
# Runs the whole test suite headless, after making sure the environment is set up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest "$@"
