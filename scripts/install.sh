#!/usr/bin/env bash
# Creates a virtualenv (MEMSVC_VENV, default .venv) and installs memsvc into it.
# Usage: scripts/install.sh [server|dev|client]   (default: server)
#   server  the service: memsvc serve / worker / migrate (torch, Postgres, models)
#   dev     the service plus the test tools (pytest, ruff, mypy, playwright + Debian chromium)
#   client  the Python SDK alone (httpx, pydantic): what an agent application needs
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MEMSVC_VENV:-.venv}
WHAT=${1:-server}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
case "$WHAT" in
  client)
    "$VENV/bin/pip" install -q . ;;
  server|dev)
    # The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
    "$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/pip" install -q "torch==2.13.0"
    "$VENV/bin/pip" install -q -e ".[$WHAT]" ;;
  *)
    echo "usage: scripts/install.sh [server|dev|client]" >&2; exit 2 ;;
esac
if [ "$WHAT" = dev ]; then
  # Browser tests drive Debian's chromium (playwright cannot download browsers here).
  if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
      >/dev/null 2>&1 || echo "install.sh: could not install chromium; browser tests will skip" >&2
  fi
fi
