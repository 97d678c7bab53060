"""Faults under ingest: Postgres killed under `memsvc serve`, `memsvc serve` (API and its
in-process worker) killed with SIGKILL and restarted; then every acknowledged write must be
present exactly once and the service healthy without a manual restart.

    python bench/faults.py [--writers 4] [--phase 15] [--out OUT.json]
    python bench/faults.py --llm [--writers 2] [--phase 5]     # the LLM provider phase

Writers add batches of 5 memories, each with an Idempotency-Key and a marker, retrying the
same request (same key) on 503, 429 and connection errors until acknowledged. Prints acked,
stored, missing, duplicated, the status counts seen and the recovery time of each fault.

``--llm``: instead of the kills, `memsvc serve` runs in LLM mode against a fake
OpenAI-compatible provider on loopback (real litellm, real HTTP) that answers, phase by
phase, well (ok), with prose instead of JSON (garbage), never (hang, past the 2 s
timeout) and with 500 (error), then well again. After ingest the enrichment queue is
drained; prints the provider's calls by outcome, the fallbacks recorded in job results,
enrichment statuses (every memory must be enriched) and the exactly-once check.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.scaleout import check_exactly_once, free_port, memsvc_cmd, wait_http  # noqa: E402
from memsvc.store.db import sqlalchemy_url, start_embedded  # noqa: E402

NOTE = {"keywords": ["fact"], "tags": ["bench"], "context": "A benchmark fact."}


class FakeProvider:
    """An OpenAI-compatible ``/chat/completions`` whose behaviour is ``self.mode``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                mode = provider.mode
                with provider.lock:
                    provider.calls[mode] += 1
                if mode == "hang":
                    time.sleep(30)
                    return
                if mode == "error":
                    self._send(500, {"error": {"message": "upstream down", "type": "server"}})
                    return
                prompt = str(body["messages"][1]["content"])
                if mode == "garbage":
                    reply = "Sure! This memory is about a fact, and I think it is nice."
                elif "building a note" in prompt:
                    reply = json.dumps(NOTE)
                else:
                    reply = json.dumps({"links": [], "evolutions": []})
                self._send(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": "fake",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply},
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 100,
                            "completion_tokens": 20,
                            "total_tokens": 120,
                        },
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Writers:
    def __init__(self, url: str, key: str, cube: str, n: int) -> None:
        self.url, self.key, self.cube = url, key, cube
        self.acks: list[dict[str, object]] = []
        self.statuses: Counter[str] = Counter()
        self.last_ack = 0.0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pace_s = 0.0  # pause after each acknowledged batch
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
                        time.sleep(self.pace_s)
                        break
                    time.sleep(0.2)


def serve(
    data: Path, port: int, log: Path, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "MEMSVC_DATABASE_URL"}
    env["MEMSVC_LIMITS__RATE_PER_S"] = "0"
    env.update(extra or {})
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


def enrichment_figures(db_url: str) -> dict[str, object]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        status = dict(
            conn.execute(text("SELECT enrichment_status, count(*) FROM memory GROUP BY 1")).all()
        )
        whys = dict(
            conn.execute(
                text(
                    "SELECT coalesce(result->>'why', 'none'), count(*) FROM job "
                    "WHERE kind = 'enrich' AND status = 'done' GROUP BY 1"
                )
            ).all()
        )
        calls = conn.execute(
            text(
                "SELECT coalesce(sum((result->>'llm_calls')::int), 0), "
                "coalesce(max((result->>'llm_calls')::int), 0) FROM job WHERE kind = 'enrich'"
            )
        ).one()
        usage = conn.execute(
            text("SELECT coalesce(sum(calls), 0), coalesce(sum(tokens), 0) FROM llm_usage")
        ).one()
    engine.dispose()
    return {
        "enrichment_status": {str(k): int(v) for k, v in status.items()},
        "fallbacks_by_why": {str(k): int(v) for k, v in whys.items()},
        "answered_llm_calls_in_job_results": int(calls[0]),
        "max_answered_llm_calls_per_enrichment": int(calls[1]),
        "llm_usage_calls_tokens": [int(usage[0]), int(usage[1])],
    }


def drained(url: str, key: str, timeout: float = 600) -> bool:
    deadline = time.monotonic() + timeout
    h = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        try:
            counts = httpx.get(f"{url}/v1/jobs", headers=h, timeout=10).json()["counts"]
            if counts["queued"] == 0 and counts["running"] == 0:
                return True
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(1)
    return False


def llm_phase(args: argparse.Namespace) -> dict[str, object]:
    """Ingest while the provider answers ok, garbage, nothing, 500, then ok again."""
    provider = FakeProvider()
    work = Path(tempfile.mkdtemp(prefix="memsvc-faults-llm-"))
    data, log = work / "data", work / "serve.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    extra = {
        "MEMSVC_LLM__MODEL": "openai/fake",
        "MEMSVC_LLM__API_BASE": provider.url,
        "MEMSVC_LLM__API_KEY": "fake",
        "MEMSVC_LLM__TIMEOUT_S": "2",
        "MEMSVC_LLM__BREAKER_COOLDOWN_S": str(max(args.phase / 2, 1.0)),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    proc = serve(data, port, log, extra)
    wait_http(url, proc)
    key = (data / "admin.key").read_text().strip()
    cube = httpx.post(
        f"{url}/v1/cubes", json={"name": "faults"}, headers={"Authorization": f"Bearer {key}"}
    ).json()["id"]
    w = Writers(url, key, cube, args.writers)
    w.pace_s = 0.5
    w.start()
    try:
        for mode in ("ok", "garbage", "hang", "error", "ok"):
            provider.mode = mode
            time.sleep(args.phase)
    finally:
        w.join()
    t0 = time.monotonic()
    ok = drained(url, key)
    figures: dict[str, object] = {
        "queue_drained": ok,
        "drain_s": round(time.monotonic() - t0, 1),
        "provider_calls_by_outcome": dict(provider.calls),
    }
    health = httpx.get(f"{url}/readyz").status_code
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    provider.server.shutdown()
    server = start_embedded(data)
    try:
        db_url = sqlalchemy_url(server.get_uri())
        check = check_exactly_once(db_url, w.acks)
        figures.update(enrichment_figures(db_url))
    finally:
        server.cleanup()
    figures.update(
        {
            "acked_batches": len(w.acks),
            **check,
            "statuses": dict(w.statuses),
            "readyz_after": health,
        }
    )
    return figures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--phase", type=float, default=15.0, help="seconds of ingest per phase")
    ap.add_argument("--llm", action="store_true", help="the LLM provider phase instead")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.llm:
        figures = llm_phase(args)
        print(json.dumps(figures, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(figures, indent=2))
        return

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
