"""Issue-2 basics: cold start of `memsvc serve`, create latency, batch throughput, search at N.

    python bench/serve_basics.py [--memories 10000] [--out OUT.json]

Starts real `memsvc serve` processes on a temp data dir (embedded Postgres), talks to them
over HTTP with the SDK, and measures the raw embedder in this process for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from memsvc.schemas import MemoryCreate
from memsvc.sdk import MemoryClient

WORDS = (
    "alice bob carol went to the market bought apples pears painted a landscape adopted a dog "
    "moved to lisbon started a new job as a nurse ran a marathon in june read a novel about "
    "space visited grandma baked bread learned guitar joined a support group planned a trip"
).split()


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize() + "."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data: Path, port: int) -> tuple[subprocess.Popen[str], float]:
    env = {k: v for k, v in os.environ.items() if k != "MEMSVC_DATABASE_URL"}
    env["MEMSVC_JOBS__IN_PROCESS_WORKER"] = "false"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "memsvc.cli", "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "memsvc: ready on" in line:
            return proc, time.perf_counter() - t0
    raise RuntimeError("serve exited before ready")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] if len(xs) > 1 else xs[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memories", type=int, default=10_000)
    ap.add_argument("--out")
    args = ap.parse_args()
    rng = random.Random(7)
    out: dict[str, float | int] = {}

    from memsvc.config import ModelSettings
    from memsvc.runtime import build_runtime

    rt = build_runtime(ModelSettings())
    texts = [sentence(rng) for _ in range(512)]
    rt.embed_sync(texts[:64])
    t0 = time.perf_counter()
    for i in range(0, len(texts), 64):
        rt.embed_sync(texts[i : i + 64])
    out["raw_embedder_texts_per_s"] = len(texts) / (time.perf_counter() - t0)
    rt.close()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc, first = start(data, port)
        out["cold_start_first_s"] = first
        stop(proc)
        proc, again = start(data, port)
        out["cold_start_restart_s"] = again
        key = (data / "admin.key").read_text().strip()
        try:
            with MemoryClient(url, key, timeout=120) as c:
                cube = c.create_cube("bench")
                lat = []
                for _ in range(50):
                    t = time.perf_counter()
                    c.add(cube.id, sentence(rng))
                    lat.append((time.perf_counter() - t) * 1000)
                out["create_one_ms_p50"] = statistics.median(lat)
                out["create_one_ms_p95"] = pct(lat, 95)
                n = args.memories
                t = time.perf_counter()
                for _ in range(0, n, 100):
                    c.add_many(cube.id, [MemoryCreate(content=sentence(rng)) for _ in range(100)])
                rate = n / (time.perf_counter() - t)
                out["batch100_memories_per_s"] = rate
                out["batch100_vs_raw_embedder"] = rate / out["raw_embedder_texts_per_s"]
                lat = []
                for _ in range(200):
                    t = time.perf_counter()
                    c.search(cube.id, sentence(rng), top_k=10)
                    lat.append((time.perf_counter() - t) * 1000)
                out["memories"] = n + 50
                out["search_ms_p50"] = statistics.median(lat)
                out["search_ms_p95"] = pct(lat, 95)
        finally:
            stop(proc)
    for k, v in out.items():
        print(f"{k:32s} {v:10.2f}" if isinstance(v, float) else f"{k:32s} {v:10d}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
