"""Nearest neighbours, and the HNSW index only where it earns its keep.

Most cubes are small, and below the exact-search threshold every memory is scored exactly
(the DESIGN's small-cube rule), so an HNSW entry for their memories would never be read —
yet inserting it was more than half of batch ingest's cost outside the model. The index is
therefore partial (``WHERE ann``): a cube is *promoted* (``cube.ann_indexed``) the first
time a search finds it above the threshold, by the ``ann_index`` job, which flags its
memories in batches.

Approximate search is HNSW over the flagged memories **plus** exact scores for the cube's
unflagged tail (memories written before or while the job ran; a partial b-tree finds
them), so a memory is never missing from results while the index catches up.

Writes to a promoted cube: small ones are flagged as they are inserted. Bulk ones (at
least ``DEFER_FROM`` memories in a request) are written unflagged and *folded* into the
index by an ``ann_index`` job a few seconds later (``schedule_fold``), as vector stores
index growing segments in the background: on real text an HNSW insert costs about a third
of the embedding's CPU on a small machine, and the client need not wait for it. The fold
does the same work later (counted by ``bench/load.py``); the unflagged tail it leaves
meanwhile is scored exactly, so results stay complete.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from typing import cast as cast_type

import numpy as np
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Row,
    Select,
    Subquery,
    bindparam,
    cast,
    exists,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.caches import caches_of
from memsvc.store.jobs import enqueue_many
from memsvc.store.models import EMBEDDING_DIM, Cube, Job, Memory, MemoryPassage

Ranked = list[tuple[uuid.UUID, float]]

JOB_KIND = "ann_index"
# Memories flagged per transaction by the promotion job (each commit makes progress
# durable; a killed job resumes where the flags stop).
PROMOTE_BATCH = 2_000
# Unflagged tail hits of a promoted cube at which a search asks for another promotion
# pass (stragglers: writes that raced the promotion; asks are throttled, see below).
TAIL_REPROMOTE = 1
# Writes of at least this many memories into a promoted cube leave the index to a fold job.
DEFER_FROM = 64
# HNSW candidate list size at search (at least): the index is built with m=8 (migration
# 0009) and a wider search buys back the recall: at 100k MiniLM vectors of real text
# (bench/load.py --texts),
# recall@10 against exact search is 0.972 at 200 (m=16 with 50/100: 0.948/0.980).
EF_SEARCH_MIN = 200
# Every connection starts with these (``memsvc.store.db``): approximate searches need no
# statement of their own to set them (one round trip less per search).
SEARCH_SETTINGS = {"hnsw.ef_search": str(EF_SEARCH_MIN), "hnsw.iterative_scan": "relaxed_order"}


async def is_indexed(session: AsyncSession, cube_id: uuid.UUID) -> bool:
    """Whether the cube has been promoted to the HNSW index (a promotion is never undone,
    so a yes is remembered until evicted; a no for a few seconds: ``Caches.ann_indexed``)."""
    known = caches_of(session).ann_indexed.get(cube_id)
    if known is not None:
        return known
    row = await session.execute(select(Cube.ann_indexed).where(Cube.id == cube_id))
    indexed = bool(row.scalar())
    caches_of(session).ann_indexed[cube_id] = indexed
    return indexed


async def nearest(
    session: AsyncSession,
    base: Select[Any],
    vec: np.ndarray,
    depth: int,
    *,
    approximate: bool,
    cube_id: uuid.UUID | None = None,
    facts: Sequence[ColumnElement[Any]] = (),
    prepared: Prepared | None = None,
) -> tuple[Ranked, int, dict[uuid.UUID, Row[Any]]]:
    """The ``depth`` memories of ``base`` closest to ``vec`` (cosine similarity, best first),
    and how many of them came from a promoted cube's unindexed tail (0 when exact).

    ``approximate`` (promoted cubes only): HNSW with iterative scan over flagged memories —
    so filters that drop most neighbours still fill ``depth`` — and exact scores of the
    tail, in one statement. Otherwise every memory is scored exactly. With ``cube_id``
    the passages of the cube's long memories are scored too (``memsvc.store.passages``):
    a memory ranks by its best vector. ``facts`` (columns of ``Memory``) of each memory
    found come back by id, read in the same statement (a search needs their validity and
    times next: no second round trip).

    ``prepared``: the same statement built once with bound parameters
    (``nearest_statement``) and its parameters other than ``vec`` and ``depth``; it then
    stands for ``base``, ``cube_id`` and ``facts``.
    """
    if approximate and depth > EF_SEARCH_MIN:
        # The connection's default (``SEARCH_SETTINGS``) covers depths up to EF_SEARCH_MIN.
        await session.execute(
            select(func.set_config("hnsw.ef_search", str(min(depth, 1000)), True))
        )
    if prepared is not None:
        stmt, params = prepared
        rows = (await session.execute(stmt, {**params, "vec": vec, "depth": depth})).all()
    else:
        stmt = nearest_statement(
            base, vec, depth, approximate=approximate, cube_id=cube_id, facts=facts
        )
        rows = (await session.execute(stmt)).all()
    found = cast_type(Sequence[Any], rows)  # (id, distance, tail, *facts)
    ranked = _best([(r[0], r[1]) for r in found])[:depth]
    return ranked, sum(1 for r in found if r[2]), {r[0]: r for r in found}


# A statement of ``nearest`` built with bound parameters, and the values of those other
# than ``vec`` and ``depth``.
Prepared = tuple[Select[Any], dict[str, Any]]
# The bound parameters of a prepared statement's query vector and depth.
VEC = bindparam("vec", type_=Memory.embedding.type)
DEPTH = bindparam("depth", type_=Integer)


def nearest_statement(
    base: Select[Any],
    vec: np.ndarray | BindParameter[Any],
    depth: int | BindParameter[int],
    *,
    approximate: bool,
    cube_id: uuid.UUID | ColumnElement[Any] | None,
    facts: Sequence[ColumnElement[Any]] = (),
) -> Select[Any]:
    """``nearest``'s statement: (id, distance, from the unindexed tail, *facts)."""
    found = _nearest_query(base, vec, depth, approximate=approximate, cube_id=cube_id)
    stmt = select(found.c.id, found.c.d, found.c.tail, *facts)
    if facts:
        stmt = stmt.join(Memory, Memory.id == found.c.id)
    return stmt


def _nearest_query(
    base: Select[Any],
    vec: np.ndarray | BindParameter[Any],
    depth: int | BindParameter[int],
    *,
    approximate: bool,
    cube_id: uuid.UUID | ColumnElement[Any] | None,
) -> Subquery:
    """The candidates of ``nearest`` as (id, distance, from the unindexed tail): a memory
    may appear twice (by its own vector and by a passage's)."""
    # Ordered by the selected distance itself (computed once a row: ordering by the
    # expression again computed it twice, 16% of an exact 10k scan). The HNSW index is over
    # the half-precision expression of flagged rows only, so no plan here can use it.
    d = exact_distance(Memory.embedding, vec).label("d")
    scoped = base.add_columns(d).where(Memory.embedding.is_not(None))
    parts: list[Select[Any]] = []
    if not approximate:
        own = scoped.order_by(d, Memory.id).limit(depth).subquery()
        parts.append(select(own.c.id, own.c.d, literal(False).label("tail")))
    else:
        # The index is over half-precision copies (migration 0008): order by that
        # distance, score with the full-precision one.
        approx = _half_distance(Memory.embedding, vec)
        indexed = scoped.where(Memory.ann).order_by(approx).limit(depth).subquery()
        tail = scoped.where(~Memory.ann).order_by(d, Memory.id).limit(depth).subquery()
        parts.append(select(indexed.c.id, indexed.c.d, literal(False).label("tail")))
        parts.append(select(tail.c.id, tail.c.d, literal(True).label("tail")))
    if cube_id is not None:
        if not approximate:
            bp = _best_passages(base, vec, depth, cube_id).subquery()
            parts.append(select(bp.c.memory_id.label("id"), bp.c.d, literal(False).label("tail")))
        else:
            parts.extend(_indexed_passages(base, vec, depth, cube_id))
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()


def exact_distance(column: Any, vec: np.ndarray | BindParameter[Any]) -> ColumnElement[Any]:
    """The cosine distance of stored vectors to ``vec``, as ``1 - inner product``: every
    stored vector is unit-norm (the embedder's, or an import's normalised on the way in:
    ``memsvc.store.transfer.decode_vector``), and pgvector's inner product skips the two
    norms cosine computes per row (an exact scan of 10k vectors: 3.4 -> 2.8 ms)."""
    distance: ColumnElement[Any] = literal(1.0) + column.max_inner_product(vec)
    return distance


def _half_distance(column: Any, vec: np.ndarray | BindParameter[Any]) -> ColumnElement[Any]:
    """The cosine distance the partial HNSW indexes order by: over half-precision copies
    (migrations 0008, 0025); results are scored with the full-precision one."""
    half = HALFVEC(EMBEDDING_DIM)
    query = vec if isinstance(vec, BindParameter) else literal(vec, column.type)
    distance: ColumnElement[Any] = cast(column, half).cosine_distance(cast(query, half))
    return distance


# Passages the HNSW index returns per memory asked for: a memory may have several near the
# query, and one result per memory is wanted.
PASSAGE_FANOUT = 4


def _best_passages(
    base: Select[Any],
    vec: np.ndarray | BindParameter[Any],
    depth: int | BindParameter[int],
    cube_id: uuid.UUID | ColumnElement[Any] | None,
    *,
    unindexed_only: bool = False,
) -> Select[Any]:
    """Memories' passages scored exactly: each memory's best passage distance, closest
    first (``unindexed_only``: only those not yet in the HNSW index)."""
    pdist: Any = func.min(exact_distance(MemoryPassage.embedding, vec))
    stmt = select(MemoryPassage.memory_id, pdist.label("d")).where(
        MemoryPassage.cube_id == cube_id, MemoryPassage.memory_id.in_(base)
    )
    if unindexed_only:
        stmt = stmt.where(~MemoryPassage.ann)
    return (
        stmt.group_by(MemoryPassage.memory_id).order_by(pdist, MemoryPassage.memory_id).limit(depth)
    )


def _indexed_passages(
    base: Select[Any],
    vec: np.ndarray | BindParameter[Any],
    depth: int | BindParameter[int],
    cube_id: uuid.UUID | ColumnElement[Any],
) -> list[Select[Any]]:
    """A promoted cube's passages: HNSW (iterative scan) over the flagged ones, ordered by
    the half-precision distance and scored with the full one, and the unflagged tail scored
    exactly, as for memories; (id, distance, from the tail) rows, a memory possibly more
    than once."""
    approx = _half_distance(MemoryPassage.embedding, vec)
    indexed = (
        select(
            MemoryPassage.memory_id.label("id"),
            exact_distance(MemoryPassage.embedding, vec).label("d"),
        )
        .where(
            MemoryPassage.ann,
            MemoryPassage.cube_id == cube_id,
            MemoryPassage.memory_id.in_(base),
        )
        .order_by(approx)
        .limit(depth * PASSAGE_FANOUT)
        .subquery()
    )
    tail = _best_passages(base, vec, depth, cube_id, unindexed_only=True).subquery()
    return [
        select(indexed.c.id, indexed.c.d, literal(False).label("tail")),
        select(tail.c.memory_id.label("id"), tail.c.d, literal(True).label("tail")),
    ]


async def nearest_passages(
    session: AsyncSession, base: Select[Any], vec: np.ndarray, depth: int, *, cube_id: uuid.UUID
) -> Ranked:
    """The ``depth`` memories of ``base`` whose best passage is closest to ``vec`` (cosine
    similarity of that passage, best first); memories without passages are not among them."""
    return _ranked((await session.execute(_best_passages(base, vec, depth, cube_id))).all())


def _ranked(rows: Any) -> Ranked:
    ranked = [(mid, 1.0 - float(d)) for mid, d in rows]
    ranked.sort(key=lambda t: (-t[1], str(t[0])))
    return ranked


def _best(rows: Any) -> Ranked:
    """``_ranked`` keeping each memory once, by its best score."""
    best: dict[uuid.UUID, float] = {}
    for mid, d in rows:
        best[mid] = min(float(d), best.get(mid, 2.0))
    return _ranked(best.items())


async def request_promotion(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID
) -> bool:
    """Queue the ``ann_index`` job for the cube in the caller's transaction, unless one is
    pending or this process asked within the last minute; True when queued."""
    asked = caches_of(session).promotion_asked
    if cube_id in asked:
        return False
    asked[cube_id] = True
    if await _job_exists(session, tenant_id, cube_id, ("queued", "running")):
        return False
    await enqueue_many(
        session, kind=JOB_KIND, payloads=[{"cube_id": str(cube_id)}], tenant_id=tenant_id
    )
    return True


async def _job_exists(
    session: AsyncSession, tenant_id: uuid.UUID, cube_id: uuid.UUID, statuses: tuple[str, ...]
) -> bool:
    """Whether an ``ann_index`` job for the cube is in one of ``statuses``."""
    found = await session.execute(
        select(
            exists().where(
                Job.tenant_id == tenant_id,
                Job.kind == JOB_KIND,
                Job.status.in_(statuses),
                Job.payload["cube_id"].astext == str(cube_id),
            )
        )
    )
    return bool(found.scalar())


async def schedule_fold(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, delay_s: float
) -> bool:
    """Queue an ``ann_index`` job to fold a promoted cube's unflagged memories into the
    index ``delay_s`` from now, in the caller's transaction, unless one is queued already
    (it will fold these too: a fold flags everything unflagged when it runs); True when
    queued. No lock is taken, so concurrent writers may queue two: the second folds
    nothing. Memories committed after a fold's last batch wait for the next write or search
    to queue one, and are scored exactly until then."""
    if await _job_exists(session, tenant_id, cube_id, ("queued",)):
        return False
    await enqueue_many(
        session,
        kind=JOB_KIND,
        payloads=[{"cube_id": str(cube_id)}],
        tenant_id=tenant_id,
        run_after_s=delay_s,
    )
    return True


async def mark_cube(session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID) -> bool:
    """Promote the cube (a no-op when it is already): searches use the index from now on.
    False if the cube is gone."""
    res = await session.execute(
        select(Cube.ann_indexed).where(Cube.id == cube_id, Cube.tenant_id == tenant_id)
    )
    indexed = res.scalar()
    if indexed is None:
        return False
    if not indexed:
        await session.execute(
            update(Cube)
            .where(Cube.id == cube_id, Cube.tenant_id == tenant_id)
            .values(ann_indexed=True)
        )
    caches_of(session).ann_indexed[cube_id] = True  # this process's searches use it at once
    return True


async def flag_batch(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, limit: int = PROMOTE_BATCH
) -> int:
    """Put up to ``limit`` of the cube's unflagged memories into the index; how many.

    Not a change of the memory (no version, ``updated_at`` kept): only where it is indexed.
    Rows locked by a writer are skipped and picked up by a later pass.
    """
    todo = (
        select(Memory.id)
        .where(Memory.tenant_id == tenant_id, Memory.cube_id == cube_id, ~Memory.ann)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    res = await session.execute(
        update(Memory).where(Memory.id.in_(todo)).values(ann=True).returning(Memory.id)
    )
    return len(res.all())


async def flag_passages(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, limit: int = PROMOTE_BATCH
) -> int:
    """Put up to ``limit`` unflagged passages of the cube's flagged memories into the index;
    how many (rows locked by a writer are left for a later pass)."""
    todo = (
        select(MemoryPassage.memory_id, MemoryPassage.idx)
        .join(Memory, Memory.id == MemoryPassage.memory_id)
        .where(
            MemoryPassage.tenant_id == tenant_id,
            MemoryPassage.cube_id == cube_id,
            ~MemoryPassage.ann,
            Memory.ann,
        )
        .limit(limit)
        .with_for_update(of=MemoryPassage, skip_locked=True)
        .subquery()
    )
    res = await session.execute(
        update(MemoryPassage)
        .where(
            MemoryPassage.memory_id == todo.c.memory_id,
            MemoryPassage.idx == todo.c.idx,
        )
        .values(ann=True)
        .returning(MemoryPassage.memory_id)
    )
    return len(res.all())
