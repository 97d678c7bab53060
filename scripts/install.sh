#!/usr/bin/env bash
# Creates .venv and installs memsvc into it. Usage: scripts/install.sh [dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "torch==2.13.0"
if [ "${1:-}" = "dev" ]; then
  .venv/bin/pip install -q -e ".[dev]"
  # Browser tests drive Debian's chromium (playwright cannot download browsers here).
  if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
      >/dev/null 2>&1 || echo "install.sh: could not install chromium; browser tests will skip" >&2
  fi
else
  .venv/bin/pip install -q -e .
fi
