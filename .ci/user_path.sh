#!/usr/bin/env bash
# The path a new user takes, as the README says: the plain server install and `memsvc serve`
# on a fresh data directory; the SDK from a client-only install (at the lowest versions the
# client declares) writes and searches with the printed key; then a clean stop that leaves no
# Postgres behind. A runtime dependency missing from the plain install fails CI here.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/memsvc-user.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "user path: server install + serve on 127.0.0.1:$port, data in $work/data"
MEMSVC_VENV="$work/server" bash scripts/serve.sh --port "$port" --data-dir "$work/data" \
  >"$work/serve.log" 2>&1 &
serve_pid=$!
cleanup() {
  kill -9 "$serve_pid" 2>/dev/null || true
  pkill -9 -f "$work/data" 2>/dev/null || true
}
trap cleanup EXIT
PIP_CONSTRAINT="$PWD/.ci/client-lowest.txt" MEMSVC_VENV="$work/client" \
  bash scripts/install.sh client
status=0
"$work/client/bin/python" .ci/user_path.py --url "http://127.0.0.1:$port" \
  --data-dir "$work/data" --log "$work/serve.log" --pid "$serve_pid" || status=$?
if [ "$status" != 0 ]; then
  echo "---- memsvc serve log ----"; tail -n 60 "$work/serve.log"; exit "$status"
fi
# A clean stop: SIGTERM ends the service and its embedded Postgres with it.
kill -TERM "$serve_pid"
(sleep 90; kill -9 "$serve_pid" 2>/dev/null) & watchdog=$!
rc=0; wait "$serve_pid" || rc=$?
kill "$watchdog" 2>/dev/null || true
if [ "$rc" != 0 ] && [ "$rc" != 143 ]; then
  echo "user path: memsvc serve exited with $rc on SIGTERM"; tail -n 60 "$work/serve.log"; exit 1
fi
sleep 1
if pgrep -af "$work/data"; then
  echo "user path: Postgres still running after memsvc serve stopped"; exit 1
fi
trap - EXIT
rm -rf "$work"
echo "user path: clean stop, no Postgres left"
