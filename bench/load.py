"""Load benchmark: batch ingest throughput and search latency at N memories, next to the
raw embedder and raw pgvector kNN measured in the same run (and mem0 when importable).

    python bench/load.py --memories 10000 [--out OUT.json] [--ingest K] [--backend onnx]

The first ``--ingest`` memories (default: all) go through the SDK's ``add_many``, which is
the measured ingest; the rest, if any, are written straight into the memory table with
real embeddings of their text, so search can be timed at N without hours of ingest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Instance, local_instance

from memsvc.runtime.selftest import synthetic_sentences
from memsvc.schemas import MemoryCreate, SearchRequest
from memsvc.sdk import AsyncMemoryClient, MemoryClient

BATCH = 500


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(len(s) * p / 100))], 2) if s else 0.0


def ingest(client: MemoryClient, cube: str, texts: list[str]) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        client.add_many(cube, [MemoryCreate(content=t) for t in texts[i : i + BATCH]])
    return len(texts) / (time.perf_counter() - started)


def direct_fill(inst: Instance, cube: str, texts: list[str]) -> None:
    """Write memories straight into the table (search-time data only: no versions/jobs)."""
    import psycopg
    from pgvector.psycopg import register_vector

    vecs = inst.runtime.embed_sync(texts)
    with psycopg.connect(libpq(inst)) as conn:
        register_vector(conn)
        tenant = conn.execute("SELECT tenant_id FROM cube WHERE id = %s", (cube,)).fetchone()
        assert tenant is not None
        with conn.cursor().copy(
            "COPY memory (id, tenant_id, cube_id, content, index_text, kind, layer, tags,"
            " keywords, metadata, importance, status, enrichment_status, version, embedding)"
            " FROM STDIN"
        ) as copy:
            for t, v in zip(texts, vecs, strict=True):
                copy.write_row(
                    (
                        uuid.uuid4(),
                        tenant[0],
                        cube,
                        t,
                        t,
                        "fact",
                        "semantic",
                        [],
                        [],
                        "{}",
                        0.5,
                        "active",
                        "skipped",
                        1,
                        v,
                    )
                )
        conn.execute("ANALYZE memory")


def libpq(inst: Instance) -> str:
    assert inst.database_url
    return inst.database_url.replace("postgresql+psycopg://", "postgresql://")


def raw_knn_ms(inst: Instance, cube: str, queries: np.ndarray, *, exact: bool) -> list[float]:
    """Raw pgvector top-10 over the cube with psycopg (no API, no query embedding)."""
    import psycopg
    from pgvector.psycopg import register_vector

    order = "(embedding <=> %s) + 0" if exact else "embedding <=> %s"
    sql = f"SELECT id FROM memory WHERE cube_id = %s ORDER BY {order} LIMIT 10"
    out = []
    with psycopg.connect(libpq(inst), autocommit=True) as conn:
        register_vector(conn)
        for q in queries:
            t = time.perf_counter()
            conn.execute(sql, (cube, q)).fetchall()
            out.append((time.perf_counter() - t) * 1000)
    return out


async def search_ms(
    inst: Instance, cube: str, queries: list[str], preset: str, conc: int
) -> list[float]:
    lat: list[float] = []
    async with AsyncMemoryClient(inst.url, inst.api_key, timeout=120) as client:
        work = list(queries)

        async def worker() -> None:
            while work:
                q = work.pop()
                t = time.perf_counter()
                await client.search(cube, SearchRequest(query=q, top_k=10, preset=preset))
                lat.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(worker() for _ in range(conc)))
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--memories", type=int, required=True)
    ap.add_argument("--ingest", type=int, default=None, help="how many go through the API")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--presets", default="fast,hybrid")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    n = args.memories
    n_api = min(n, args.ingest if args.ingest is not None else n)
    texts = synthetic_sentences(n, seed=1)
    queries = synthetic_sentences(args.queries, seed=99)
    report: dict[str, Any] = {"memories": n, "ingested_via_api": n_api}
    with local_instance(backend=args.backend) as inst:
        rt = inst.runtime
        report["runtime"] = dict(rt.info())
        sample = texts[: min(2000, n)]
        rt.embed_sync(sample[:64])
        t = time.perf_counter()
        rt.embed_sync(sample)
        report["raw_embedder_texts_per_s"] = round(len(sample) / (time.perf_counter() - t), 1)
        t = time.perf_counter()
        lat_q = []
        for q in queries[:50]:
            t1 = time.perf_counter()
            rt.embed_sync([q])
            lat_q.append((time.perf_counter() - t1) * 1000)
        report["raw_query_embed_ms_p50"] = pct(lat_q, 50)
        with MemoryClient(inst.url, inst.api_key, timeout=600) as client:
            cube = str(client.create_cube(f"load-{n}").id)
            rate = ingest(client, cube, texts[:n_api])
        report["ingest_texts_per_s"] = round(rate, 1)
        report["ingest_vs_raw_embedder"] = round(rate / report["raw_embedder_texts_per_s"], 3)
        print(f"ingest {rate:.1f}/s via API", flush=True)
        if n > n_api:
            direct_fill(inst, cube, texts[n_api:])
        qv = rt.embed_sync(queries)
        exact = n <= 20_000
        raw = raw_knn_ms(inst, cube, qv, exact=exact)
        report["raw_pgvector_knn"] = {
            "exact": exact,
            "p50_ms": pct(raw, 50),
            "p95_ms": pct(raw, 95),
        }
        for preset in args.presets.split(","):
            for conc in (1, 8):
                lat = asyncio.run(search_ms(inst, cube, queries, preset, conc))
                report[f"search_{preset}_c{conc}"] = {
                    "p50_ms": pct(lat, 50),
                    "p95_ms": pct(lat, 95),
                    "qps": round(len(lat) / (sum(lat) / 1000 / conc), 1),
                }
                print(preset, conc, report[f"search_{preset}_c{conc}"], flush=True)
        report["mem0"] = mem0_status()
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


def mem0_status() -> str:
    try:
        import mem0  # noqa: F401
    except ImportError:
        return "mem0ai not importable here: no comparison run"
    return "mem0ai importable, comparison not implemented in this run"


if __name__ == "__main__":
    main()
