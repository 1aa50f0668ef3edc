#!/usr/bin/env bash
# Set up, check lint and format (ruff), then run the test suite (pass --runslow for the
# large runs). CI runs this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
LINTED="src tests bench scripts fixtures"
.venv/bin/ruff check --quiet $LINTED
.venv/bin/ruff format --check --quiet $LINTED
exec .venv/bin/python -m pytest "$@"
