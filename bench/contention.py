"""Search latency while the in-process worker enriches, and while an agent writes.

    python bench/contention.py [--memories 2000] [--burst 1500] [--out OUT.json]

``memsvc serve`` runs the job worker in the API's process and event loop by default
(``jobs.in_process_worker``): every write queues an enrichment job (A-MEM: keywords,
links, notes; heuristic without an LLM) that runs beside the requests. This measures what
that costs a search: ``fast`` and ``hybrid`` at one client (bench/load.py's client, a
process of its own, through the SDK) over a cube of ``--memories`` memories, in three
phases:

1. ``idle``: no job pending, no writes;
2. ``enriching``: right after ``--burst`` memories were written into another cube, while
   the worker works through their enrichment jobs (the jobs pending before and after the
   phase are reported: the phase counts only if the worker was busy throughout);
3. ``writing``: while a writer thread adds 10 memories every 100 ms to the other cube
   (an agent writing as it goes) and the worker enriches them.

Reported per phase and preset: p50/p95 and their ratio to ``idle``, the worker's
enrichment rate during the phase, and the writer's rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Instance, local_instance
from load import libpq, search_ms

from memsvc.runtime.selftest import synthetic_sentences
from memsvc.sdk import MemoryClient

PRESETS = ("fast", "hybrid")


def pending_jobs(inst: Instance) -> int:
    import psycopg

    with psycopg.connect(libpq(inst), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM job WHERE status IN ('queued', 'running')"
        ).fetchone()
    return int(row[0]) if row else 0


def wait_idle(inst: Instance, timeout_s: float = 900) -> float:
    """Wait until no job is pending; the seconds it took."""
    started = time.perf_counter()
    while pending_jobs(inst) and time.perf_counter() - started < timeout_s:
        time.sleep(0.5)
    return time.perf_counter() - started


def measure(inst: Instance, cube: str, queries: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for preset in PRESETS:
        jobs_before = pending_jobs(inst)
        t = time.perf_counter()
        got = search_ms(inst, cube, queries, preset, 1)
        seconds = time.perf_counter() - t
        jobs_after = pending_jobs(inst)
        out[preset] = {
            "p50_ms": got["p50_ms"],
            "p95_ms": got["p95_ms"],
            "embed_ms_p50": got.get("embed_ms_p50"),
            "db_ms_p50": got.get("db_ms_p50"),
            "jobs_pending_before": jobs_before,
            "jobs_pending_after": jobs_after,
            "jobs_done_per_s": round(max(0, jobs_before - jobs_after) / seconds, 1),
        }
    return out


class Writer(threading.Thread):
    """Adds ``batch`` memories every ``every_s`` seconds until stopped."""

    def __init__(self, client: MemoryClient, cube: str, texts: list[str], batch: int = 10):
        super().__init__(daemon=True)
        self.client, self.cube, self.texts, self.batch = client, cube, texts, batch
        self.every_s = 0.1
        self.written = 0
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        started = time.perf_counter()
        while not self.halt.is_set() and i < len(self.texts):
            chunk = self.texts[i : i + self.batch]
            self.client.add_many(self.cube, [{"content": t} for t in chunk])
            i += len(chunk)
            self.written = i
            wait = self.every_s - (time.perf_counter() - started) % self.every_s
            self.halt.wait(wait)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--memories", type=int, default=2000)
    ap.add_argument("--burst", type=int, default=1500)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    texts = synthetic_sentences(args.memories + args.queries + args.burst + 20_000, seed=5)
    base = texts[: args.memories]
    queries = texts[args.memories : args.memories + args.queries]
    rest = texts[args.memories + args.queries :]
    burst, live = rest[: args.burst], rest[args.burst :]
    report: dict[str, Any] = {"memories": args.memories, "burst": args.burst}
    with local_instance(worker=True) as inst:
        client = MemoryClient(inst.url, api_key=inst.api_key, timeout=120)
        searched = str(client.create_cube(name="searched").id)
        written = str(client.create_cube(name="written").id)
        for i in range(0, len(base), 500):
            client.add_many(searched, [{"content": t} for t in base[i : i + 500]])
        report["setup_enrichment_s"] = round(wait_idle(inst), 1)

        report["idle"] = measure(inst, searched, queries)

        t = time.perf_counter()
        for i in range(0, len(burst), 100):
            client.add_many(written, [{"content": x} for x in burst[i : i + 100]])
        report["burst_write_s"] = round(time.perf_counter() - t, 1)
        report["enriching"] = measure(inst, searched, queries)
        report["burst_enrichment_drained_s"] = round(wait_idle(inst), 1)

        writer = Writer(client, written, live)
        t = time.perf_counter()
        writer.start()
        time.sleep(2)
        report["writing"] = measure(inst, searched, queries)
        writer.halt.set()
        writer.join()
        report["writer_memories_per_s"] = round(writer.written / (time.perf_counter() - t), 1)
        report["writing_enrichment_drained_s"] = round(wait_idle(inst), 1)

    for phase in ("enriching", "writing"):
        for preset in PRESETS:
            idle = report["idle"][preset]
            cur = report[phase][preset]
            cur["p50_vs_idle"] = round(cur["p50_ms"] / idle["p50_ms"], 2)
            cur["p95_vs_idle"] = round(cur["p95_ms"] / idle["p95_ms"], 2)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
