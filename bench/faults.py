"""Faults under ingest: Postgres killed under `memsvc serve`, `memsvc serve` (API and its
in-process worker) killed with SIGKILL and restarted; then every acknowledged write must be
present exactly once and the service healthy without a manual restart.

    python bench/faults.py [--writers 4] [--phase 15] [--out OUT.json]

Writers add batches of 5 memories, each with an Idempotency-Key and a marker, retrying the
same request (same key) on 503, 429 and connection errors until acknowledged. Prints acked,
stored, missing, duplicated, the status counts seen and the recovery time of each fault.
(Not yet here: an LLM provider that hangs or answers garbage.)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.scaleout import check_exactly_once, free_port, memsvc_cmd, wait_http  # noqa: E402
from memsvc.store.db import sqlalchemy_url, start_embedded  # noqa: E402


class Writers:
    def __init__(self, url: str, key: str, cube: str, n: int) -> None:
        self.url, self.key, self.cube = url, key, cube
        self.acks: list[dict[str, object]] = []
        self.statuses: Counter[str] = Counter()
        self.last_ack = 0.0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=300)

    def _run(self) -> None:
        h = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=h, timeout=30) as c:
            while not self.stop.is_set():
                marker = uuid.uuid4().hex
                body = {"memories": [{"content": f"fact [{marker}-{i}]"} for i in range(5)]}
                idem = {"Idempotency-Key": marker}
                while True:  # the same request until acknowledged
                    try:
                        r = c.post(f"/v1/cubes/{self.cube}/memories", json=body, headers=idem)
                        status = str(r.status_code)
                    except httpx.HTTPError as exc:
                        status, r = type(exc).__name__, None
                    with self.lock:
                        self.statuses[status] += 1
                    if r is not None and r.status_code == 201:
                        ids = [m["id"] for m in r.json()["items"]]
                        with self.lock:
                            self.acks.append({"marker": marker, "ids": ids})
                            self.last_ack = time.monotonic()
                        break
                    time.sleep(0.2)


def serve(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "MEMSVC_DATABASE_URL"}
    env["MEMSVC_LIMITS__RATE_PER_S"] = "0"
    with log.open("ab") as fh:
        return subprocess.Popen(
            memsvc_cmd("serve", "--data-dir", str(data), "--port", str(port)),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )


def recovered_after(w: Writers, t0: float, timeout: float = 300) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if w.last_ack > t0:
            return round(w.last_ack - t0, 2)
        time.sleep(0.05)
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--phase", type=float, default=15.0, help="seconds of ingest per phase")
    ap.add_argument("--out")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="memsvc-faults-"))
    data, log = work / "data", work / "serve.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(data, port, log)
    wait_http(url, proc)
    key = (data / "admin.key").read_text().strip()
    cube = httpx.post(
        f"{url}/v1/cubes", json={"name": "faults"}, headers={"Authorization": f"Bearer {key}"}
    ).json()["id"]
    w = Writers(url, key, cube, args.writers)
    w.start()
    figures: dict[str, object] = {}
    try:
        time.sleep(args.phase)
        # 1. Postgres killed under load; serve must restart it and the pool reconnect.
        pg = int((data / "pg" / "postmaster.pid").read_text().splitlines()[0])
        t0 = time.monotonic()
        os.kill(pg, signal.SIGKILL)
        figures["postgres_kill_recovery_s"] = recovered_after(w, t0)
        time.sleep(args.phase)
        # 2. memsvc serve (API + in-process worker) killed with SIGKILL, then started again.
        t0 = time.monotonic()
        proc.kill()
        proc.wait()
        proc = serve(data, port, log)
        wait_http(url, proc)
        figures["serve_kill_restart_recovery_s"] = recovered_after(w, t0)
        time.sleep(args.phase)
    finally:
        w.join()
    health = httpx.get(f"{url}/readyz").status_code
    server = start_embedded(data)
    try:
        check = check_exactly_once(sqlalchemy_url(server.get_uri()), w.acks)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        server.cleanup()
    figures.update(
        {
            "acked_batches": len(w.acks),
            **check,
            "statuses": dict(w.statuses),
            "readyz_after": health,
        }
    )
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
