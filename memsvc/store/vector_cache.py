"""Cubes' vectors kept in the process and scored with numpy, used only at the database's
current generation of them.

Below the exact-search threshold a search scores every vector of the cube. In Postgres
that is a sequential scan of the memory rows (vectors inline) at about 0.3-0.7 us a row:
7 ms of a 16 ms ``fast`` search over 10k memories on a 2-core machine. The same scores
from a float32 matrix in this process take a fraction of a millisecond.

A kept copy is exact or unused. The database bumps ``cube.vector_gen`` in the transaction
of every change to what a search can score (migration 0026), and a search reads the
counter with its cube check, so a copy is scored only when it was loaded at that very
generation: a write from any replica, an erasure, a new version is seen by the next
search, which then scores in SQL and asks for a fresh copy in the background (at most one
load at a time per cube, and not more often than ``RELOAD_EVERY_S``: a cube written as
fast as it is searched stays on SQL rather than reloading on every search). A stale copy
is dropped the moment it is found stale, so erased vectors do not linger here.

Candidates found in the copy are read back with the scope's filters (status, kind,
tenant) and their ranking facts in one statement, so whatever the copy holds, only live
memories of the caller's cube are returned.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from cachetools import LRUCache
from prometheus_client import Counter, Gauge
from sqlalchemy import Select, func, literal, select, true, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.models import EMBEDDING_DIM, Cube, Memory, MemoryPassage

log = logging.getLogger(__name__)

Ranked = list[tuple[uuid.UUID, float]]
Key = tuple[uuid.UUID, uuid.UUID]  # (tenant, cube)

# A cube is reloaded at most once per this many seconds per process.
RELOAD_EVERY_S = 10.0

SEARCHES = Counter(
    "memsvc_vector_cache_searches_total",
    "Exact searches of cubes big enough to keep, by whether a current copy served them",
    ["outcome"],
)
LOADS = Counter("memsvc_vector_cache_loads_total", "Copies of cubes' vectors loaded")
KEPT_BYTES = Gauge("memsvc_vector_cache_bytes", "Bytes of cubes' vectors kept in this process")


def single_threaded_blas() -> None:
    """Hold numpy's BLAS to one thread in this process. Scoring a matrix is one
    matrix-vector product a search; OpenBLAS's helper threads then spin between searches:
    10k vectors took 0.34 ms on two threads against 0.66 on one, but 5.9 ms of CPU per
    product against 1.2 (bench/load.py, 10k memories: the service's CPU per ``fast`` search
    rose from 9 to 17 ms, and 8 clients got 79 searches/s instead of 117). A service has its
    requests to run in parallel; the model runtime's threads are its own (torch, ONNX)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


@dataclass(frozen=True)
class Matrix:
    """One cube's scoreable vectors at one generation: each row a memory's own vector or
    one of its passages (``owners``: the row's memory, an index into ``ids``)."""

    gen: int
    ids: list[uuid.UUID]
    vectors: np.ndarray  # (rows, dim) float32, unit norm
    owners: np.ndarray  # (rows,) intp

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.owners.nbytes + 64 * len(self.ids))

    def nearest(self, query: np.ndarray, depth: int) -> Ranked:
        """The ``depth`` memories closest to ``query`` by their best vector (cosine
        similarity, best first; ties by id), as ``memsvc.store.ann.nearest`` ranks them."""
        if not self.ids or depth <= 0:
            return []
        scores = self.vectors @ np.asarray(query, dtype=np.float32)
        if len(scores) == len(self.ids):  # no passages: row i is memory i
            best = scores
        else:
            best = np.full(len(self.ids), -np.inf, dtype=np.float32)
            np.maximum.at(best, self.owners, scores)
        k = min(depth, len(best))
        top = np.argpartition(-best, k - 1)[:k] if k < len(best) else np.arange(len(best))
        ranked = [(self.ids[i], float(best[i])) for i in top if np.isfinite(best[i])]
        ranked.sort(key=lambda t: (-t[1], str(t[0])))
        return ranked


def load_statement(base: Select[Any], cube: Any, tenant: Any) -> Select[Any]:
    """(generation, id, vector, is a passage) rows of the scope ``base`` (memory ids) of a
    cube: its memories' own vectors and their passages, each row with the cube's
    generation, in one statement (one snapshot). The vectors come in pgvector's binary
    form (``vector_send``: a 4-byte header, then big-endian float32s). An empty cube gives
    one row with no id; a cube that is gone, none."""
    own = base.add_columns(Memory.embedding, literal(False).label("passage")).where(
        Memory.embedding.is_not(None)
    )
    passages = select(MemoryPassage.memory_id, MemoryPassage.embedding, literal(True)).where(
        MemoryPassage.cube_id == cube, MemoryPassage.memory_id.in_(base)
    )
    v = union_all(own, passages).subquery("v")
    stmt = (
        select(Cube.vector_gen, v.c.id, func.vector_send(v.c.embedding), v.c.passage)
        .select_from(Cube)
        .outerjoin(v, true())
        .where(Cube.id == cube, Cube.tenant_id == tenant)
    )
    return cast(Select[Any], stmt)


async def fetch_binary(
    session: AsyncSession, statement: Select[Any], params: dict[str, Any]
) -> list[Any]:
    """The rows of ``statement`` in the session's transaction, read in Postgres's binary
    format (psycopg, bypassing SQLAlchemy's result processing): 10k vectors as text took
    a quarter of a second to parse, as binary 35 ms all told."""
    conn = await session.connection()
    compiled = statement.compile(dialect=conn.dialect)
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    async with raw.cursor(binary=True) as cur:
        await cur.execute(str(compiled), {**compiled.params, **params})
        return list(await cur.fetchall())


def matrix_of(rows: list[Any], dim: int) -> Matrix:
    """The matrix of ``load_statement``'s rows (at least one): own vectors first, so
    that where every memory has one, row i is memory i."""
    found = sorted((r for r in rows if r[1] is not None), key=lambda r: bool(r[3]))
    records = np.frombuffer(b"".join(r[2] for r in found), dtype=np.uint8)
    vectors = records.reshape(len(found), 4 + 4 * dim)[:, 4:].copy().view(">f4")
    index: dict[uuid.UUID, int] = {}
    owners = np.fromiter(
        (index.setdefault(r[1], len(index)) for r in found), dtype=np.intp, count=len(found)
    )
    return Matrix(
        gen=int(rows[0][0]),
        ids=list(index),
        vectors=vectors.astype(np.float32),
        owners=owners,
    )


@dataclass
class VectorCache:
    """Matrices of recently searched cubes, least recently used first out, within
    ``max_bytes``; cubes of fewer than ``min_vectors`` vectors are left to SQL (a small
    scan costs less than keeping them)."""

    max_bytes: int = 256 * 1024 * 1024
    min_vectors: int = 2_000
    hits: int = 0
    misses: int = 0
    loads: int = 0
    _kept: LRUCache[Key, Matrix] = field(init=False)
    _loading: set[Key] = field(default_factory=set)
    _loaded_at: LRUCache[Key, float] = field(default_factory=lambda: LRUCache(100_000))

    def __post_init__(self) -> None:
        self._kept = LRUCache(max(self.max_bytes, 1), getsizeof=lambda m: m.nbytes)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def keeps(self, vectors: int) -> bool:
        """Whether a cube of this many vectors is worth keeping."""
        return self.enabled and vectors >= self.min_vectors

    def get(self, key: Key, gen: int) -> Matrix | None:
        """The cube's matrix if it was loaded at ``gen``; a stale one is dropped."""
        kept = self._kept.get(key)
        if kept is not None and kept.gen == gen:
            self.hits += 1
            SEARCHES.labels("hit").inc()
            return kept
        if kept is not None:
            del self._kept[key]
            KEPT_BYTES.set(self._kept.currsize)
        self.misses += 1
        SEARCHES.labels("miss").inc()
        return None

    def wants(self, key: Key, vectors: int) -> bool:
        """Whether a load of the cube should start now."""
        if not self.keeps(vectors) or key in self._loading:
            return False
        last = self._loaded_at.get(key)
        return last is None or time.monotonic() - last >= RELOAD_EVERY_S

    async def load(
        self,
        key: Key,
        open_session: Callable[[], Any],
        statement: Select[Any],
        params: dict[str, Any],
    ) -> None:
        """Read the cube's vectors in a transaction of their own (``open_session``: an
        async context manager giving a session scoped to the tenant) and keep them. A
        failure is logged: searches go on scoring in SQL, and a later one tries again."""
        self._loading.add(key)
        self._loaded_at[key] = time.monotonic()
        try:
            session: AsyncSession
            async with open_session() as session:
                rows = await fetch_binary(session, statement, params)
            if not rows:  # the cube is gone
                return
            matrix = matrix_of(rows, EMBEDDING_DIM)
            if matrix.nbytes <= self.max_bytes:
                self._kept[key] = matrix
                self.loads += 1
                LOADS.inc()
                KEPT_BYTES.set(self._kept.currsize)
        except Exception:
            log.exception("loading a cube's vectors into the process failed")
        finally:
            self._loading.discard(key)

    def clear(self) -> None:
        self._kept.clear()
        self._loaded_at.clear()
        KEPT_BYTES.set(0)
