"""Raw embedder speed: batched throughput, single-query latency, torch vs ONNX Runtime.

Backends: ``torch``, ``onnx``, and ``onnx-int8`` (the ONNX graph for documents, its int8
copy for queries: ``models.query_int8``; its query latency and concurrent singles go through
the query path).

.venv/bin/python bench/embedder.py --n 512 --rounds 3 --out bench-embedder.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from memsvc.runtime import ModelRuntime, SentenceTransformerEmbedder
from memsvc.runtime.selftest import (
    latencies_ms,
    percentile,
    synthetic_sentences,
    throughput,
)


def concurrent_rate(runtime: ModelRuntime, texts: list[str]) -> float:
    """Texts/s when every text is its own concurrent query through the micro-batcher."""

    async def main() -> None:
        await asyncio.gather(*(runtime.embed_query(t) for t in texts))

    asyncio.run(main())  # warm-up: starts the worker thread
    start = time.perf_counter()
    asyncio.run(main())
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    """Measure each backend in interleaved rounds (the machine may be shared) and report medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="packaged:all-MiniLM-L6-v2")
    parser.add_argument("--n", type=int, default=512, help="synthetic sentences")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--queries", type=int, default=100, help="single-query calls")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()

    texts = synthetic_sentences(args.n)
    queries = synthetic_sentences(args.queries, seed=1)
    models: dict[str, SentenceTransformerEmbedder] = {}
    for name in args.backends.split(","):
        start = time.perf_counter()
        model = SentenceTransformerEmbedder(
            args.model,
            device=args.device,
            batch_size=args.batch_size,
            backend=name.removesuffix("-int8"),
            cache_dir=args.cache_dir,
            query_int8=name.endswith("-int8"),
        )
        if model.query_backend != name:
            fell = model.query_backend
            print(f"{name}: unavailable, fell back to {fell}; skipped", file=sys.stderr)
            continue
        models[name] = model
        print(f"{name}: loaded in {time.perf_counter() - start:.1f}s", file=sys.stderr)

    samples: dict[str, dict[str, list[float]]] = {
        name: {"rate": [], "lat": [], "concurrent": []} for name in models
    }
    for _ in range(args.rounds):
        for name, model in models.items():
            samples[name]["rate"].append(throughput(model.embed, texts, args.batch_size))
            samples[name]["lat"].extend(latencies_ms(model.embed_queries, queries))
            runtime = ModelRuntime(model, batch_size=args.batch_size, batch_wait_ms=2.0)
            try:
                samples[name]["concurrent"].append(concurrent_rate(runtime, texts))
            finally:
                runtime.close()

    results: dict[str, dict[str, float | str]] = {}
    for name, s in samples.items():
        results[name] = {
            "device": models[name].device,
            "texts_per_s_batched": round(percentile(s["rate"], 50), 1),
            "texts_per_s_concurrent_singles": round(percentile(s["concurrent"], 50), 1),
            "query_ms_p50": round(percentile(s["lat"], 50), 2),
            "query_ms_p95": round(percentile(s["lat"], 95), 2),
        }
    report = {
        "model": args.model,
        "n": args.n,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "backends": results,
    }
    header = f"{'backend':9} {'batched/s':>10} {'conc/s':>8} {'p50 ms':>8} {'p95 ms':>8}"
    print(header)
    for name, r in results.items():
        print(
            f"{name:9} {r['texts_per_s_batched']:>10} {r['texts_per_s_concurrent_singles']:>8} "
            f"{r['query_ms_p50']:>8} {r['query_ms_p95']:>8}"
        )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
