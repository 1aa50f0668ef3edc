#!/usr/bin/env bash
# Set up, then run the test suite (pass --runslow for the large runs).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
