#!/usr/bin/env bash
# Installs what Backroom needs on a fresh Debian machine, idempotently.
#   scripts/setup.sh          # the demo: venv + runtime deps + broker jars
#   scripts/setup.sh --test   # also dev/test tools, the [train] extra, kcat and chromium
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-}"
PY="${PYTHON:-python3}"

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
if [ "$MODE" = "--test" ]; then
  command -v kcat >/dev/null || need_apt+=(kcat)
  command -v chromium >/dev/null || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.installed${MODE:+-test}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$MODE" = "--test" ]; then
    .venv/bin/python -m pip install -q -e ".[dev,train]"
  else
    .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi

# The broker jars, once, into the cache (also done lazily by `backroom broker start`).
.venv/bin/python -c "from backroom.settings import get_settings; from broker.embedded import EmbeddedBroker; print('setup: broker jars in', EmbeddedBroker(get_settings()).resolve())"
