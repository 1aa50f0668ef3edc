#!/usr/bin/env bash
# Create .venv (if missing) and install coord with its test dependencies into it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import coord, msgspec, sqlite_utils, click, blake3, pytest, hypothesis" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
fi
# Users' machines keep bytecode; precompile so start-up is not paid twice.
PYTHONDONTWRITEBYTECODE= .venv/bin/python -m compileall -q src >/dev/null || true
