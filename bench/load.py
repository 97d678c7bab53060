"""Load benchmark: batch ingest throughput and search latency at N memories, next to the
raw embedder and raw pgvector kNN measured in the same run, and mem0 on the same data.

    python bench/load.py --memories 10000 [--out OUT.json] [--ingest K] [--backend onnx]
        [--mem0-python /tmp/mem0venv/bin/python] [--mem0-limit K]

The first ``--ingest`` memories (default: all) go through the SDK's ``add_many``, which is
the measured ingest; the rest, if any, are written straight into the memory table with
real embeddings of their text, so search can be timed at N without hours of ingest.
Ingest is compared with the raw embedder in alternating rounds of 1,000 texts (embed them
through the runtime, then write the same texts through the API); the median of the
per-round ratios is ``ingest_vs_raw_embedder`` (the shared machine's speed drifts).
Once its vectors (memories and their passages) pass 20,000 the cube is then promoted to the
HNSW index (the ``ann_index`` job, timed); above 20,000 memories ``--ingest-large`` more
texts are ingested into it the same way (the filled memories have no passages). Bulk writes to
a promoted cube are acknowledged before they are in the HNSW index and folded in by a job
later: the report gives both the acknowledged rate and the rate with the fold's running
time added (``indexed_*``).

mem0 (``bench/mem0_side.py``) runs in a subprocess under ``--mem0-python`` (an interpreter
with ``mem0ai``; a separate venv, see CONTRIBUTING.md) or under this one when ``mem0`` is
importable here: its OSS ``Memory`` on this run's Postgres (own table), the same packaged
MiniLM through its ``huggingface`` embedder, ``add(infer=False)`` one text at a time, then
the same queries at concurrency 1 and 8. ``--mem0-limit K`` times only the first K adds
and fills the rest through mem0's own embedder and vector store, so its search still runs
over all N. Ratios: memsvc/mem0 ingest texts/s, mem0/memsvc search p50 and p95.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
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
from memsvc.store.indexing import passages

# Texts per add_many request (--batch; long messages want fewer: a request must finish
# within the service's 60 s response timeout on a slow machine).
BATCH = 500
# Texts per alternating raw-embedder / API round of the ingest measurement.
ROUND = 1000
# The service's default exact-search threshold: larger cubes get the HNSW index.
EXACT_THRESHOLD = 20_000


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(len(s) * p / 100))], 2) if s else 0.0


def ingest(
    client: MemoryClient,
    runtime: Any,
    cube: str,
    texts: list[str],
    folds: Instance | None = None,
    batch: int = BATCH,
) -> dict[str, Any]:
    """Batch ingest through the SDK, measured against the raw embedder in alternating
    rounds: each round first embeds its texts straight through the runtime (then, apart,
    the later passages of its long texts, which the service embeds too), then writes the
    same texts through the API. The machine's speed drifts (shared cores), so the ratio is
    taken per round and the median reported, next to the overall rates.

    ``folds`` (a promoted cube): bulk writes are acknowledged before they are in the HNSW
    index, and a job folds them in later. After each round its fold is made due at once
    and waited for; the job's own running time is added to the round's API time for the
    ``indexed`` figures, so the deferred work is counted."""
    per_round = max(batch, min(ROUND, len(texts)))
    raw_s = api_s = fold_s = 0.0
    ratios, indexed, with_passages = [], [], []
    n_passages = 0
    for r in range(0, len(texts), per_round):
        chunk = texts[r : r + per_round]
        t = time.perf_counter()
        runtime.embed_sync(chunk)
        raw = time.perf_counter() - t
        # What the service must embed besides: long texts' later passages.
        later = [p for x in chunk for p in passages(x)]
        t = time.perf_counter()
        if later:
            runtime.embed_sync(later)
        raw_passages = time.perf_counter() - t
        since = db_now(folds) if folds is not None else None
        t = time.perf_counter()
        for i in range(0, len(chunk), batch):
            client.add_many(cube, [MemoryCreate(content=x) for x in chunk[i : i + batch]])
        api = time.perf_counter() - t
        raw_s, api_s = raw_s + raw, api_s + api
        ratios.append(raw / api)
        with_passages.append((raw + raw_passages) / api)
        n_passages += len(later)
        if folds is not None:
            fold = drain_folds(folds, cube, since)
            fold_s += fold
            indexed.append(raw / (api + fold))
    out: dict[str, Any] = {
        "texts": len(texts),
        "texts_per_s": round(len(texts) / api_s, 1),
        "raw_embedder_texts_per_s": round(len(texts) / raw_s, 1),
        "vs_raw_embedder_median": round(statistics.median(ratios), 3),
        "vs_raw_embedder_rounds": [round(x, 3) for x in ratios],
        # The raw embedder given the same work as the service: the texts and the later
        # passages of the long ones (memsvc.store.indexing.passages).
        "passages": n_passages,
        "vs_raw_embedder_with_passages_median": round(statistics.median(with_passages), 3),
    }
    if folds is not None:
        out["fold_seconds"] = round(fold_s, 2)
        out["indexed_texts_per_s"] = round(len(texts) / (api_s + fold_s), 1)
        out["indexed_vs_raw_embedder_median"] = round(statistics.median(indexed), 3)
        out["indexed_vs_raw_embedder_rounds"] = [round(x, 3) for x in indexed]
    return out


def db_now(inst: Instance) -> Any:
    import psycopg

    with psycopg.connect(libpq(inst), autocommit=True) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


def drain_folds(inst: Instance, cube: str, since: Any) -> float:
    """Make the cube's queued fold due now, run it (``run_ann_jobs``), check that every
    memory is in the index, and return the running time (s) the fold jobs finished since
    ``since`` (the start of the round's writes) report for themselves."""
    import psycopg

    where = "kind = 'ann_index' AND payload->>'cube_id' = %(c)s"
    with psycopg.connect(libpq(inst), autocommit=True) as conn:
        conn.execute(
            f"UPDATE job SET run_after = now() WHERE {where} AND status = 'queued'", {"c": cube}
        )
        run_ann_jobs(inst)
        tail = conn.execute(
            "SELECT count(*) FROM memory WHERE cube_id = %(c)s AND NOT ann", {"c": cube}
        ).fetchone()
        assert tail is not None
        if tail[0]:
            raise RuntimeError(f"{tail[0]} memories are still outside the index after the fold")
        done = conn.execute(
            "SELECT coalesce(sum((result->>'seconds')::float), 0) FROM job"
            f" WHERE {where} AND status = 'done' AND updated_at >= %(since)s",
            {"c": cube, "since": since},
        ).fetchone()
    assert done is not None
    return float(done[0])


def run_ann_jobs(inst: Instance) -> int:
    """Run the ready ``ann_index`` jobs as ``serve``'s worker would, with a worker in this
    process that takes only that kind (the bench's server runs no worker, so the enrichment
    jobs its writes queue stay queued and cost nothing here)."""
    from memsvc.config import Settings
    from memsvc.jobs.handlers import default_handlers
    from memsvc.jobs.worker import Worker
    from memsvc.store import ann
    from memsvc.store.db import Database

    async def run() -> int:
        assert inst.database_url
        db = Database.connect(inst.database_url)
        handler = default_handlers()[ann.JOB_KIND]
        worker = Worker(db, Settings(), llm=None, handlers={ann.JOB_KIND: handler})
        try:
            return await worker.run_until_idle()
        finally:
            await db.close()

    return asyncio.run(run())


def promote(inst: Instance, client: MemoryClient, cube: str) -> dict[str, Any]:
    """Promote the cube to the HNSW index as ``serve`` does: a search above the threshold
    queues the ``ann_index`` job, which a worker runs (timed)."""
    client.search(cube, SearchRequest(query="promote", top_k=1, preset="fast"))
    t = time.perf_counter()
    out: dict[str, Any] = {"jobs": run_ann_jobs(inst)}
    out["seconds"] = round(time.perf_counter() - t, 1)
    import psycopg

    with psycopg.connect(libpq(inst), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE ann), count(*) FROM memory WHERE cube_id = %s", (cube,)
        ).fetchone()
        conn.execute("ANALYZE memory")
    assert row is not None
    out.update(indexed=row[0], memories=row[1])
    out["memories_per_s"] = round(row[0] / out["seconds"], 1) if out["seconds"] else None
    return out


def embeddings(runtime: Any, texts: list[str], cache: Path | None) -> np.ndarray:
    """The runtime's vectors of ``texts``, kept in ``cache`` (a directory) by a hash of the
    model and the texts: the fill of a 100k cube embeds once, not on every run."""
    if cache is None:
        return np.asarray(runtime.embed_sync(texts), dtype=np.float32)
    key = hashlib.sha256("\0".join([str(runtime.info()["embedder"]), *texts]).encode()).hexdigest()[
        :24
    ]
    path = cache / f"vectors-{len(texts)}-{key}.npy"
    if path.exists():
        return np.load(path)
    vecs = np.asarray(runtime.embed_sync(texts), dtype=np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    return vecs


def lme_texts(path: Path) -> tuple[list[str], list[str]]:
    """LongMemEval's haystack turns as memory texts (as bench/lme.py writes them) and its
    questions."""
    data = json.loads(path.read_text())
    seen: dict[str, None] = {}
    for q in data:
        for session in q["haystack_sessions"]:
            for turn in session:
                text = f"{turn['role']}: {turn['content']}".strip()
                if len(text.encode()) <= 32 * 1024:
                    seen.setdefault(text, None)
    return list(seen), [str(q["question"]) for q in data]


def fill_vectors(
    runtime: Any, texts: list[str], start: int, args: argparse.Namespace
) -> np.ndarray:
    """Vectors of ``texts[start:]``: with ``--vector-cache`` cut from the cached vectors of
    all the texts (memsvc's fill and mem0's start at different places)."""
    if args.vector_cache is None:
        return embeddings(runtime, texts[start:], None)
    return embeddings(runtime, texts, args.vector_cache)[start:]


def direct_fill(inst: Instance, cube: str, texts: list[str], vecs: np.ndarray) -> None:
    """Write memories straight into the table (search-time data only: no versions/jobs)."""
    import psycopg
    from pgvector.psycopg import register_vector

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
    """Raw pgvector top-10 over the cube with psycopg (no API, no query embedding): exact
    scores, or the promoted cube's HNSW index as it is built (halfvec, ``WHERE ann``) with
    the service's ``ef_search``."""
    import psycopg
    from pgvector.psycopg import register_vector

    from memsvc.store.ann import EF_SEARCH_MIN

    if exact:
        sql = "SELECT id FROM memory WHERE cube_id = %s ORDER BY (embedding <=> %s) + 0 LIMIT 10"
    else:
        sql = (
            "SELECT id FROM memory WHERE cube_id = %s AND ann"
            " ORDER BY embedding::halfvec(384) <=> %s::halfvec(384) LIMIT 10"
        )
    out = []
    with psycopg.connect(libpq(inst), autocommit=True) as conn:
        register_vector(conn)
        conn.execute(f"SET hnsw.ef_search = {EF_SEARCH_MIN}")
        for q in queries:
            t = time.perf_counter()
            conn.execute(sql, (cube, q)).fetchall()
            out.append((time.perf_counter() - t) * 1000)
    return out


def search_ms(
    inst: Instance, cube: str, queries: list[str], preset: str, conc: int
) -> dict[str, Any]:
    """Search latency through the SDK from a client process of its own (as an agent would
    be: in this process it would share the server thread's GIL), with the service's
    ``Server-Timing`` phases per request: p50/p95, queries/s, and the medians of the time
    inside the service (``app``), in SQL (``db``, and how many statements), in the query
    embedding (``embed``) and outside the service (HTTP and the SDK: ``outside_app``)."""
    with tempfile.TemporaryDirectory(prefix="memsvc-load-") as tmp:
        qpath = Path(tmp) / "queries.json"
        qpath.write_text(json.dumps(queries))
        cmd = [sys.executable, __file__, "--client", inst.url, inst.api_key, cube, preset]
        cmd += [str(conc), str(qpath)]
        before = cpu_seconds(inst)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        after = cpu_seconds(inst)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    lat, phases = got["lat"], got["phases"]
    out: dict[str, Any] = {
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "qps": round(len(lat) / got["seconds"], 1),
        # Where the machine's CPU went, per search (the client process started, warmed
        # up and exited within the window: its figure is an upper bound).
        "cpu_ms_per_search": {k: round((after[k] - before[k]) * 1000 / len(lat), 2) for k in after},
    }
    for name in ("app", "db", "db_statements", "embed"):
        vals = [p[name] for p in phases if name in p]
        if vals:
            out[f"{name}_ms_p50" if name != "db_statements" else name] = round(
                statistics.median(vals), 2
            )
    out["outside_app_ms_p50"] = round(
        statistics.median(t - p.get("app", 0.0) for t, p in zip(lat, phases, strict=True)), 2
    )
    return out


def cpu_seconds(inst: Instance) -> dict[str, float]:
    """CPU seconds used so far by the service (this process: the API's event loop and the
    model runtime's threads), by Postgres (the embedded server's processes) and by the
    child processes waited for (the search client)."""
    import resource

    import psutil

    pg_dir = str(inst.data_dir / "pg")
    db = 0.0
    for proc in psutil.process_iter(["cmdline"]):
        if pg_dir in " ".join(proc.info["cmdline"] or ()):
            with contextlib.suppress(psutil.Error):
                for p in [proc, *proc.children(recursive=True)]:
                    t = p.cpu_times()
                    db += t.user + t.system
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "service": own.ru_utime + own.ru_stime,
        "postgres": db,
        "client": kids.ru_utime + kids.ru_stime,
    }


def server_timing(header: str) -> dict[str, float]:
    """``Server-Timing`` as {phase: ms}, plus ``db_statements`` from the db phase's desc."""
    out: dict[str, float] = {}
    for part in header.split(","):
        name, *params = (x.strip() for x in part.split(";"))
        for param in params:
            if param.startswith("dur="):
                out[name] = float(param[4:])
            elif param.startswith("desc=") and name == "db":
                out["db_statements"] = float(param[5:].strip('"').split()[0])
    return out


def client_main(url: str, key: str, cube: str, preset: str, conc: int, qpath: str) -> None:
    """The search client process: warm up, then ``conc`` workers through the queries; one
    JSON line of latencies and Server-Timing phases on stdout."""
    import httpx

    queries: list[str] = json.loads(Path(qpath).read_text())
    timings: dict[int, dict[str, float]] = {}
    # Which query the current task's request is (the SDK's search takes no headers).
    seq: contextvars.ContextVar[int] = contextvars.ContextVar("seq", default=-1)

    class Tap(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=conc))

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            timings[seq.get()] = server_timing(response.headers.get("server-timing", ""))
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def run() -> dict[str, Any]:
        lat: list[float] = []
        phases: list[dict[str, float]] = []
        async with AsyncMemoryClient(url, key, timeout=120, transport=Tap()) as client:
            for q in queries[:20]:  # warm the connections, caches and prepared statements
                await client.search(cube, SearchRequest(query=q, top_k=10, preset=preset))
            work = list(enumerate(queries))

            async def worker() -> None:
                while work:
                    i, q = work.pop()
                    req = SearchRequest(query=q, top_k=10, preset=preset)
                    seq.set(i)
                    t = time.perf_counter()
                    await client.search(cube, req)
                    lat.append((time.perf_counter() - t) * 1000)
                    phases.append(timings.pop(i, {}))

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            return {"lat": lat, "phases": phases, "seconds": time.perf_counter() - started}

    print(json.dumps(asyncio.run(run())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--memories", type=int, required=True)
    ap.add_argument("--ingest", type=int, default=None, help="how many go through the API")
    ap.add_argument(
        "--ingest-large",
        type=int,
        default=2000,
        help="texts ingested through the API after the cube is promoted (N > 20k only)",
    )
    ap.add_argument(
        "--texts",
        type=Path,
        default=None,
        help="JSON list of real texts to use instead of synthetic sentences"
        " (memories, then queries, then the promoted-cube ingest)",
    )
    ap.add_argument(
        "--lme",
        type=Path,
        default=None,
        help="LongMemEval JSON (../shared/data/lme_dev.json): its haystack turns, long"
        " messages, as the texts ('role: content', distinct, at most the API's 32 KB), its"
        " questions as the queries",
    )
    ap.add_argument("--batch", type=int, default=BATCH, help="texts per add_many request")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--presets", default="fast,hybrid")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--mem0-python",
        default=None,
        help="python with mem0ai installed (default: this one if mem0 imports, else skip)",
    )
    ap.add_argument(
        "--mem0-limit", type=int, default=None, help="how many texts go through mem0's add()"
    )
    ap.add_argument("--mem0-torch-threads", type=int, default=0, help="0: torch's default")
    ap.add_argument(
        "--vector-cache",
        type=Path,
        default=None,
        help="directory keeping the fill's embeddings between runs (memsvc's and mem0's fill)",
    )
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, key, cube, preset, conc, qpath = sys.argv[2:8]
        client_main(url, key, cube, preset, int(conc), qpath)
        return
    args = ap.parse_args()
    n = args.memories
    n_api = min(n, args.ingest if args.ingest is not None else n)
    if args.lme is not None:
        # Long messages: the ingest ratio then counts the passages of long memories too.
        corpus, questions = lme_texts(args.lme)
        if len(corpus) < n + args.ingest_large:
            raise SystemExit(f"--lme has {len(corpus)} distinct turns; this run needs more")
        texts, extra_texts = corpus[:n], corpus[n : n + args.ingest_large]
        queries = [questions[i % len(questions)] for i in range(args.queries)]
    elif args.texts is not None:
        # Real text: synthetic sentences repeat a small vocabulary, which makes HNSW's job
        # (and BM25's) unrealistically easy or hard; see --texts.
        corpus = [str(t) for t in json.loads(args.texts.read_text())]
        need = n + args.queries + args.ingest_large
        if len(corpus) < need:
            raise SystemExit(f"--texts has {len(corpus)} texts; this run needs {need}")
        texts, queries = corpus[:n], corpus[n : n + args.queries]
        extra_texts = corpus[n + args.queries : need]
    else:
        texts = synthetic_sentences(n, seed=1)
        queries = synthetic_sentences(args.queries, seed=99)
        extra_texts = synthetic_sentences(args.ingest_large, seed=7)
    report: dict[str, Any] = {"memories": n, "ingested_via_api": n_api}
    with local_instance(backend=args.backend) as inst:
        rt = inst.runtime
        report["runtime"] = dict(rt.info())
        sample = texts[: min(2000, n)]
        rt.embed_sync(sample[:64])
        t = time.perf_counter()
        rt.embed_sync(sample)
        report["raw_embedder_texts_per_s"] = round(len(sample) / (time.perf_counter() - t), 1)
        lat_q = []
        for q in queries[:50]:
            t1 = time.perf_counter()
            rt.embed_sync([q])
            lat_q.append((time.perf_counter() - t1) * 1000)
        report["raw_query_embed_ms_p50"] = pct(lat_q, 50)
        with MemoryClient(inst.url, inst.api_key, timeout=600) as client:
            # Warm the write path (connections, statement caches) in a cube of its own.
            warm = str(client.create_cube(f"warmup-{n}").id)
            client.add_many(warm, [MemoryCreate(content=x) for x in queries[:100]])
            cube = str(client.create_cube(f"load-{n}").id)
            report["ingest"] = ingest(client, rt, cube, texts[:n_api], batch=args.batch)
            print("ingest (cube below the threshold)", report["ingest"], flush=True)
            if n > n_api:
                direct_fill(inst, cube, texts[n_api:], fill_vectors(rt, texts, n_api, args))
            # A cube is promoted once its vectors (memories and their passages) pass the
            # threshold: at 10k long messages, by their sentence passages.
            report["ann_promotion"] = promote(inst, client, cube)
            print("promotion", report["ann_promotion"], flush=True)
            if n > EXACT_THRESHOLD:
                report["ingest_promoted_cube"] = ingest(
                    client, rt, cube, extra_texts, folds=inst, batch=args.batch
                )
                print("ingest (promoted cube)", report["ingest_promoted_cube"], flush=True)
        report["ingest_texts_per_s"] = report["ingest"]["texts_per_s"]
        report["ingest_vs_raw_embedder"] = report["ingest"]["vs_raw_embedder_median"]
        qv = rt.embed_sync(queries)
        exact = report["ann_promotion"]["indexed"] == 0
        raw = raw_knn_ms(inst, cube, qv, exact=exact)
        report["raw_pgvector_knn"] = {
            "exact": exact,
            "p50_ms": pct(raw, 50),
            "p95_ms": pct(raw, 95),
        }
        for preset in args.presets.split(","):
            for conc in (1, 8):
                report[f"search_{preset}_c{conc}"] = search_ms(inst, cube, queries, preset, conc)
                print(preset, conc, report[f"search_{preset}_c{conc}"], flush=True)
        mem0_py = mem0_python(args.mem0_python)
        if mem0_py is None:
            report["mem0"] = {"skipped": MEM0_SKIP}
        else:
            report["mem0"] = run_mem0(mem0_py, inst, texts, queries, args)
            report["mem0"]["ratios"] = mem0_ratios(report, args.presets.split(","))
    print(json.dumps(report, indent=2))
    print_comparison(report, args.presets.split(","))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


MEM0_SKIP = (
    "mem0 comparison skipped: mem0ai is not importable here and no --mem0-python was given"
    " (see CONTRIBUTING.md, Benchmarks)"
)


def mem0_python(arg: str | None) -> str | None:
    """The interpreter to run bench/mem0_side.py with, or None to skip the comparison."""
    if arg:
        return arg
    try:
        import mem0  # noqa: F401
    except ImportError:
        print(MEM0_SKIP, flush=True)
        return None
    return sys.executable


def run_mem0(
    python: str, inst: Instance, texts: list[str], queries: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    side = Path(__file__).resolve().parent / "mem0_side.py"
    with tempfile.TemporaryDirectory(prefix="mem0-data-") as tmp:
        tpath, qpath = Path(tmp) / "texts.json", Path(tmp) / "queries.json"
        tpath.write_text(json.dumps(texts))
        qpath.write_text(json.dumps(queries))
        cmd = [python, str(side), "--dsn", libpq(inst), "--texts", str(tpath)]
        cmd += ["--queries", str(qpath), "--concurrency", "1,8"]
        cmd += ["--torch-threads", str(args.mem0_torch_threads)]
        if args.mem0_limit is not None:
            cmd += ["--ingest", str(args.mem0_limit)]
            if args.vector_cache is not None and args.mem0_limit < len(texts):
                # mem0's untimed fill takes the same model's vectors (cached) instead of
                # embedding 100k texts again with its torch embedder.
                vpath = Path(tmp) / "vectors.npy"
                np.save(vpath, fill_vectors(inst.runtime, texts, args.mem0_limit, args))
                cmd += ["--vectors", str(vpath)]
        print(f"mem0: running {side.name} under {python}", flush=True)
        env = dict(os.environ, MEM0_TELEMETRY="False", HF_HUB_OFFLINE="1")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"error": f"mem0_side.py exited {proc.returncode} (its stderr is above)"}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def mem0_ratios(report: dict[str, Any], presets: list[str]) -> dict[str, Any]:
    """memsvc/mem0 ingest throughput (>1: memsvc faster); mem0/memsvc latency (>1: ditto)."""
    m = report["mem0"]
    ratios: dict[str, Any] = {
        "ingest_memsvc_over_mem0": round(report["ingest_texts_per_s"] / m["ingest_texts_per_s"], 2)
    }
    for preset in presets:
        for conc in (1, 8):
            ours, theirs = report.get(f"search_{preset}_c{conc}"), m.get(f"search_c{conc}")
            if not ours or not theirs:
                continue
            for q in ("p50_ms", "p95_ms"):
                key = f"search_{q[:3]}_mem0_over_memsvc_{preset}_c{conc}"
                ratios[key] = round(theirs[q] / ours[q], 2) if ours[q] else None
    return ratios


def print_comparison(report: dict[str, Any], presets: list[str]) -> None:
    m = report.get("mem0", {})
    if "ratios" not in m:
        print(f"mem0: {m.get('skipped') or m.get('error')}")
        return
    r = m["ratios"]
    n = report["memories"]
    print(f"\nmemsvc vs mem0 {m['mem0_version']} at N={n} (same Postgres, MiniLM, texts, queries)")
    print(
        f"  ingest texts/s   memsvc {report['ingest_texts_per_s']:>8} "
        f"(add_many, {report['ingested_via_api']} texts)   mem0 {m['ingest_texts_per_s']:>8} "
        f"(add infer=False, {m['ingested_via_add']} texts)   "
        f"memsvc/mem0 {r['ingest_memsvc_over_mem0']}x"
    )
    for preset in presets:
        for conc in (1, 8):
            ours, theirs = report.get(f"search_{preset}_c{conc}"), m.get(f"search_c{conc}")
            if not ours or not theirs:
                continue
            print(
                f"  search c{conc} {preset:<7} memsvc p50/p95 {ours['p50_ms']}/{ours['p95_ms']} ms"
                f"   mem0 {theirs['p50_ms']}/{theirs['p95_ms']} ms   mem0/memsvc "
                f"{r[f'search_p50_mem0_over_memsvc_{preset}_c{conc}']}x / "
                f"{r[f'search_p95_mem0_over_memsvc_{preset}_c{conc}']}x"
            )


if __name__ == "__main__":
    main()
