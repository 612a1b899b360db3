#!/usr/bin/env bash
# Set up a virtual environment with the benchmark extras and run the main job:
# the benchmark comparison with the default payloads.
#   bash scripts/bench.sh            # full run
#   bash scripts/bench.sh --quick    # about a minute
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[bench]'
exec "$VENV/bin/parallelpickle" bench "$@"
