#!/usr/bin/env bash
# The whole test suite, set-up included: lint, types, unit, stream, integration (a real Kafka
# broker started by the test session), bad input and browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export YOLO_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
echo "== ruff";  .venv/bin/ruff check .
echo "== mypy";  .venv/bin/mypy
echo "== pytest"
mkdir -p test-artifacts
.venv/bin/python -m pytest -q -rfE --durations=15 "$@"
