"""ask latency on one 2,000-memory cube, next to search, through the SDK over HTTP.

    python bench/ask_latency.py --locomo FILE --lme FILE [--memories 2000] [--out OUT.json]

The cube holds both LoCoMo conversations' turns (one request per session, with
``session_id``), topped up with LongMemEval haystack turns to ``--memories``. Every LoCoMo
question is then asked (heuristic mode: no LLM) and searched (``hybrid``), alternating, so
the machine's drift touches both alike. Reports p50/p95 ms of each, their ratio, the share
of asks that ended at the gate and the mean cycles.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lme import memories_of
from locomo import _client, memory_of, turns_of

from memsvc.schemas import MemoryCreate, SearchRequest


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(len(s) * q))], 1) if s else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--locomo", required=True, type=Path)
    ap.add_argument("--lme", required=True, type=Path)
    ap.add_argument("--memories", type=int, default=2000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--url")
    ap.add_argument("--api-key")
    ap.add_argument("--backend", default=None)
    args = ap.parse_args()
    locomo = json.loads(args.locomo.read_text())
    with _client(args) as client:
        cube = client.create_cube("ask-latency").id
        sessions: dict[tuple[str, int], list[MemoryCreate]] = defaultdict(list)
        for sample in locomo:
            for n, when, turn in turns_of(sample["conversation"]):
                sessions[(sample["sample_id"], n)].append(
                    memory_of(sample["sample_id"], n, when, turn)
                )
        written = 0
        for items in sessions.values():
            client.add_many(cube, items)
            written += len(items)
        for q in json.loads(args.lme.read_text()):
            if written >= args.memories:
                break
            items = [m for _, m in memories_of(q, "pad")][: args.memories - written]
            for i in range(0, len(items), 200):
                client.add_many(cube, items[i : i + 200])
            written += len(items)
        questions = [qa["question"] for s in locomo for qa in s["qa"] if int(qa["category"]) <= 4]
        ask_ms: list[float] = []
        search_ms: list[float] = []
        cycles: list[int] = []
        for question in questions:
            t0 = time.perf_counter()
            client.search(cube, SearchRequest(query=question, top_k=10))
            search_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            resp = client.ask(cube, question, top_k=10, mode="heuristic")
            ask_ms.append((time.perf_counter() - t0) * 1000)
            cycles.append(resp.cycles)
    report = {
        "memories": written,
        "questions": len(questions),
        "ask_ms_p50": pct(ask_ms, 0.5),
        "ask_ms_p95": pct(ask_ms, 0.95),
        "search_ms_p50": pct(search_ms, 0.5),
        "search_ms_p95": pct(search_ms, 0.95),
        "ask_over_search_p50": round(pct(ask_ms, 0.5) / max(pct(search_ms, 0.5), 1e-9), 2),
        "ended_at_gate": round(sum(c == 0 for c in cycles) / len(cycles), 3),
        "cycles_mean": round(statistics.fmean(cycles), 3),
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
