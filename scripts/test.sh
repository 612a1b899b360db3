#!/usr/bin/env bash
# Set up a virtual environment with the test extras and run the test suite.
#   bash scripts/test.sh                 # with python3
#   PYTHON=python3.12 bash scripts/test.sh
#   VENV=.venv-312 bash scripts/test.sh -k pool   # extra args go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test,dask,bench]'
exec "$VENV/bin/python" -m pytest "$@"
