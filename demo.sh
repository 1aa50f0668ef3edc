#!/usr/bin/env bash
# Set up, then run the demo: simulated agents take workers through the lifecycle.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
