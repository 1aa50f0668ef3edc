#!/usr/bin/env bash
# Create .venv (if missing) and install coord with its test dependencies into it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Installed already? coord with its dependencies, and the test extra: pytest, hypothesis,
# websockets, ruff, wheel (tests build one), and the optional extras (postgres, mcp, web), looked up without importing them.
if ! .venv/bin/python -c "
import importlib.util, sys
import coord, msgspec, sqlite_utils, click, blake3, pytest, hypothesis
extras = ['psycopg', 'psycopg_binary', 'mcp', 'starlette', 'uvicorn', 'websockets', 'ruff', 'wheel']
sys.exit(any(importlib.util.find_spec(m) is None for m in extras))
" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
fi
# Users' machines keep bytecode; precompile so start-up is not paid twice.
PYTHONDONTWRITEBYTECODE= .venv/bin/python -m compileall -q src >/dev/null || true
