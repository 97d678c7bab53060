"""Hybrid search: channels (vector, lexical, time, graph) fused by weighted reciprocal rank,
plus recency/importance signals and an optional cross-encoder rerank."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Row, Select, any_, bindparam, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import QueuePool

from memsvc.retrieval.channels import (
    ScopeStats,
    bm25_channel,
    cached_scope_stats,
    time_channel,
    ts_rank_channel,
    tsquery_text,
)
from memsvc.retrieval.graph_channel import graph_channel
from memsvc.retrieval.lexicon import LEXICON_MIN_SCOPE, Reopen, cached_lexicon
from memsvc.retrieval.ranker import NOT_VALID_FACTOR, Ranker
from memsvc.retrieval.ranker import Candidate as RankerCandidate
from memsvc.retrieval.ranker import features as ranker_features
from memsvc.retrieval.timeparse import parse_periods
from memsvc.schemas import (
    ChannelHit,
    RetrievalConfig,
    SearchFilters,
    SearchRequest,
    SearchResponse,
    SearchResult,
)
from memsvc.store import ann, context, textsearch, vector_cache
from memsvc.store import memories as store
from memsvc.store.ann import Ranked
from memsvc.store.caches import caches_of
from memsvc.store.filters import apply_filters, valid_at
from memsvc.store.models import Memory
from memsvc.store.textsearch import TextMatch, plain_match

__all__ = [
    "Candidates",
    "Ranking",
    "Scope",
    "explain",
    "fuse",
    "gather",
    "open_scope",
    "rank",
    "search",
    "tsquery_text",
]

Embed = Callable[[str], Awaitable[np.ndarray]]
Rerank = Callable[[str, list[str]], Awaitable[np.ndarray | None]]

DEFAULT_EXACT_THRESHOLD = 20_000
# The learned ranker scores the fused head this deep; the rest follows in fused order.
# Rescoring the training dumps' top 200 (bench/locomo.py, bench/lme.py --dump) at depth 20,
# 30, 50, 100 or 200 gave the same recall@10 on both dev sets: the model moves a candidate
# within the head, it does not pull one up from far down. 50 leaves a margin.
LEARNED_DEPTH = 50
# The lexical channel runs beside the vector one, on a connection of its own, only while
# fewer searches than this are in flight in the process (this one included: counted by
# ``memsvc.retrieval.service``): a spare core then takes it (hybrid at 10k, one client:
# p50 41 -> 37 ms), while under load the second transaction is overhead (8 clients:
# 8% fewer searches/s, and a p95 twice as long).
APART_BELOW = 2
# The filters of a search that gives none.
_DEFAULT_FILTERS = SearchFilters()


@dataclass
class Candidates:
    """Per-channel rankings of memory ids: channel -> [(id, score)] best first."""

    by_channel: dict[str, Ranked] = field(default_factory=dict)
    # Vector hits scored exactly because they are not in the HNSW index yet.
    unindexed: int = 0
    # What ranking needs of a candidate (``_facts``), read with the channel that found it.
    facts: dict[uuid.UUID, Row[Any]] = field(default_factory=dict)


def _facts(now: datetime | ColumnElement[datetime]) -> tuple[Any, ...]:
    """A candidate's columns for ranking after fusion: when it happened, when it was
    learned, its importance, and whether it is valid at ``now``."""
    return (
        Memory.occurred_at,
        Memory.created_at,
        Memory.importance,
        valid_at(now).label("valid"),
    )


def _scoped(
    stmt: Select[Any],
    *,
    tenant_id: uuid.UUID | ColumnElement[uuid.UUID],
    cube_id: uuid.UUID | ColumnElement[uuid.UUID],
    filters: SearchFilters | None,
    as_of: datetime | None,
) -> Select[Any]:
    stmt = stmt.where(Memory.tenant_id == tenant_id, Memory.cube_id == cube_id)
    stmt = apply_filters(stmt, filters or SearchFilters())
    if as_of is not None:
        stmt = stmt.where(Memory.created_at <= as_of, valid_at(as_of))
    return stmt


@functools.cache
def _plain_nearest(approximate: bool, passages: bool) -> Select[Any]:
    """The vector channel's statement over a cube's default scope (no filters, no
    ``as_of``: most searches), built once with bound parameters: building it per search
    was a tenth of a fast search's Python (yappi)."""
    tenant: ColumnElement[uuid.UUID] = bindparam("tenant_id")
    cube: ColumnElement[uuid.UUID] = bindparam("cube_id")
    base = _scoped(select(Memory.id), tenant_id=tenant, cube_id=cube, filters=None, as_of=None)
    return ann.nearest_statement(
        base,
        ann.VEC,
        ann.DEPTH,
        approximate=approximate,
        cube_id=cube if passages else None,
        facts=_facts(bindparam("now")),
    )


def fuse(cands: Candidates, cfg: RetrievalConfig) -> list[tuple[uuid.UUID, float]]:
    """Weighted reciprocal-rank fusion over channels."""
    weights = {
        "vector": cfg.vector,
        "passage": cfg.passages,
        "fulltext": cfg.fulltext,
        "time": cfg.time,
        "graph": cfg.graph,
    }
    scores: dict[uuid.UUID, float] = {}
    for channel, ranked in cands.by_channel.items():
        ch = weights.get(channel)
        w = ch.weight if ch is not None else 1.0
        for rank, (mid, _) in enumerate(ranked, start=1):
            scores[mid] = scores.get(mid, 0.0) + w / (cfg.rrf_k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], str(kv[0])))


async def _with_signals(
    session: AsyncSession,
    fused: list[tuple[uuid.UUID, float]],
    cands: Candidates,
    cfg: RetrievalConfig,
    now: datetime,
) -> list[tuple[uuid.UUID, float]]:
    """Add recency (half-life decay of when it happened, seen from ``now``) and importance to
    fused scores; a memory not valid at ``now`` (superseded, or not yet valid) keeps
    ``NOT_VALID_FACTOR`` of its score, so the current statement of a changing fact ranks
    first and the older one stays findable. Facts the channels read already are not read
    again (the vector-only ``fast`` search needs no statement here)."""
    if not fused:
        return fused
    signals = cfg.recency_weight > 0 or cfg.importance_weight > 0
    facts = {mid: cands.facts[mid] for mid, _ in fused if mid in cands.facts}
    missing = [mid for mid, _ in fused if mid not in facts]
    if missing:
        stmt = select(Memory.id, *_facts(now)).where(Memory.id.in_(missing))
        if not signals:  # only the memories that are not valid at ``now`` matter
            stmt = stmt.where(~valid_at(now))
        for row in (await session.execute(stmt)).all():
            facts[row.id] = row
    factor: dict[uuid.UUID, float] = {}
    bonus: dict[uuid.UUID, float] = {}
    for mid, row in facts.items():
        if not row.valid:
            factor[mid] = NOT_VALID_FACTOR
        if signals:
            age_days = max((now - (row.occurred_at or row.created_at)).total_seconds() / 86400, 0.0)
            recency = math.pow(0.5, age_days / cfg.recency_half_life_days)
            bonus[mid] = cfg.recency_weight * recency + cfg.importance_weight * float(
                row.importance
            )
    if not factor and not bonus:
        return fused
    out = [(mid, s * factor.get(mid, 1.0) + bonus.get(mid, 0.0)) for mid, s in fused]
    return sorted(out, key=lambda kv: (-kv[1], str(kv[0])))


async def _learned(
    session: AsyncSession,
    fused: list[tuple[uuid.UUID, float]],
    cands: Candidates,
    ranker: Ranker,
    request: SearchRequest,
) -> list[tuple[uuid.UUID, float]]:
    """The fused candidates reordered by the learned ranker's score (a logit). One not valid
    at ``now`` has its fused-score feature cut by ``NOT_VALID_FACTOR`` and loses ``log 2``
    of the logit besides (its odds halved), so a model that weighs the fused score little
    still prefers what is valid."""
    if not fused:
        return fused
    fused, rest = fused[:LEARNED_DEPTH], fused[LEARNED_DEPTH:]
    now = asked_at(request)
    valid = valid_at(now)
    rows = {
        r.id: r
        for r in await session.execute(
            select(
                Memory.id,
                # Only a model that weighs a content feature pays for reading content.
                Memory.content if ranker.reads_content else literal("").label("content"),
                Memory.occurred_at,
                Memory.created_at,
                context.speakers_of_memory().label("speakers"),
                valid.label("valid"),
            ).where(Memory.id.in_([mid for mid, _ in fused]))
        )
    }
    ids = [mid for mid, _ in fused if mid in rows]
    hits = {
        ch: {mid: (rank, score) for rank, (mid, score) in enumerate(ranked, 1)}
        for ch, ranked in cands.by_channel.items()
    }
    x = ranker_features(
        [
            RankerCandidate(
                hits={ch: h[mid] for ch, h in hits.items() if mid in h},
                content=rows[mid].content,
                speakers=rows[mid].speakers or (),
                occurred_at=rows[mid].occurred_at,
                created_at=rows[mid].created_at,
                valid=rows[mid].valid,
            )
            for mid in ids
        ],
        request.query,
        now,
    )
    scores = ranker.score(x) - np.log(2) * np.asarray([not rows[mid].valid for mid in ids])
    out = sorted(
        [(mid, float(sc)) for mid, sc in zip(ids, scores, strict=True)],
        key=lambda kv: (-kv[1], str(kv[0])),
    )
    floor = out[-1][1] if out else 0.0  # the fused tail follows, in fused order
    return out + [(mid, floor - 1.0 - i) for i, (mid, _) in enumerate(rest)]


def asked_at(request: SearchRequest) -> datetime:
    """The instant a search is asked at: its ``now``, else its ``as_of``, else the clock."""
    return request.now or request.as_of or datetime.now(UTC)


def explain(cands: Candidates, mid: uuid.UUID) -> dict[str, ChannelHit]:
    """Each channel's rank and raw score for one result."""
    out: dict[str, ChannelHit] = {}
    for channel, ranked in cands.by_channel.items():
        for rank, (cid, score) in enumerate(ranked, start=1):
            if cid == mid:
                out[channel] = ChannelHit(rank=rank, score=score)
                break
    return out


@dataclass
class Scope:
    """What one search runs over: the memories it may return and how to reach them."""

    session: AsyncSession
    tenant_id: uuid.UUID
    cube_id: uuid.UUID
    # ``select(Memory.id)`` restricted to the scope (tenant, cube, filters, as_of).
    base: Select[Any]
    # Its size, counted no further than the exact threshold, and mean BM25 length.
    stats: ScopeStats
    # Few enough vectors (memories and their passages) to score every one exactly.
    exact: bool
    # A promoted large cube: vectors through HNSW.
    approximate: bool
    # Full-text matches of large scopes through the cube's GIN index.
    cube_match: TextMatch
    # Few enough memories (the exact threshold) for exact BM25 over the scope's own rows.
    small: bool
    # No filters and no ``as_of``: the cube's default scope (prebuilt statements apply).
    plain: bool
    # A new transaction scoped like ``session``, for background refreshes.
    reopen: Reopen | None
    notes: list[str] = field(default_factory=list)
    # The database's generation of the cube's vectors, read with the cube check (None:
    # unknown; the vectors are then scored in SQL). See ``memsvc.store.vector_cache``.
    vector_gen: int | None = None


async def open_scope(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    request: SearchRequest,
    vector: bool,
    exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    reopen: Reopen | None = None,
    vector_gen: int | None = None,
) -> Scope:
    """Size the scope (cached per cube write generation) and pick exact or HNSW search;
    a large cube not yet promoted has its promotion queued."""
    base = _scoped(
        select(Memory.id),
        tenant_id=tenant_id,
        cube_id=cube_id,
        filters=request.filters,
        as_of=request.as_of,
    )
    # Small cubes are the common case: score every memory exactly below the threshold.
    key = (
        tenant_id,
        cube_id,
        caches_of(session).generation(cube_id),
        request.filters.model_dump_json() if request.filters else None,
        request.as_of,
        exact_threshold,
    )
    stats = await cached_scope_stats(session, base, exact_threshold + 1, key=key)
    scope = Scope(
        session=session,
        tenant_id=tenant_id,
        cube_id=cube_id,
        base=base,
        stats=stats,
        # What an exact search scores is every vector of the scope: a cube of long
        # messages holds about ten sentence passages a memory (LongMemEval: 10k memories,
        # about 100k vectors; fast p50 84 ms scored exactly).
        exact=stats.vectors <= exact_threshold,
        small=stats.n <= exact_threshold,
        approximate=False,
        cube_match=textsearch.cube_match(tenant_id, cube_id),
        plain=request.as_of is None and (request.filters or _DEFAULT_FILTERS) == _DEFAULT_FILTERS,
        reopen=reopen,
        vector_gen=vector_gen,
    )
    if not scope.exact and vector:
        # Large cube: HNSW once the cube is promoted; until then exact scores, and the
        # promotion is queued (memsvc.store.ann).
        scope.approximate = await ann.is_indexed(session, cube_id)
        if not scope.approximate:
            scope.notes.append(
                "cube above the exact-search threshold: its HNSW index is being built"
            )
            await ann.request_promotion(session, tenant_id=tenant_id, cube_id=cube_id)
    return scope


async def _fulltext(
    scope: Scope,
    request: SearchRequest,
    depth: int,
    scorer: str,
    into: dict[uuid.UUID, Row[Any]] | None = None,
) -> Ranked:
    """The lexical channel: BM25, with a cached lexicon on large scopes (``stats`` counts
    only up to the exact threshold, so above it the lexicon's size is the true one;
    ``reopen`` lets a stale lexicon be refreshed in the background, see ``cached_lexicon``).

    ``as_of`` scopes are not cached (each instant is its own scope): exact BM25 below the
    threshold, ts_rank_cd above it. Large scopes find matches through the GIN index
    (``cube_match``); small ones filter the cube's own rows. BM25 reads what ranking
    needs of each memory it ranks (``_facts``) ``into`` the given dict.
    """
    session, base, stats = scope.session, scope.base, scope.stats
    query, as_of = request.query, request.as_of
    large = stats.n > LEXICON_MIN_SCOPE or not scope.small
    match = scope.cube_match if large else plain_match
    if scorer == "ts_rank":
        return await ts_rank_channel(session, base, query, depth, match=match)
    facts = _facts(asked_at(request)) if into is not None else ()
    if large and as_of is None:
        lexicon = await cached_lexicon(session, base, reopen=scope.reopen)
        return await bm25_channel(
            session, base, query, depth, stats, lexicon=lexicon, match=match, facts=facts, into=into
        )
    if scope.small:
        return await bm25_channel(
            session, base, query, depth, stats, match=match, facts=facts, into=into
        )
    scope.notes.append("as_of search above the exact-search threshold: full-text uses ts_rank_cd")
    return await ts_rank_channel(session, base, query, depth, match=match)


async def gather(
    scope: Scope, request: SearchRequest, config: RetrievalConfig, query_vec: np.ndarray | None
) -> Candidates:
    """Each configured channel's ranking over the scope."""
    session, base = scope.session, scope.base
    cands = Candidates()
    lexical = None
    vector = config.vector is not None and query_vec is not None
    lexical_facts: dict[uuid.UUID, Row[Any]] = {}
    if config.fulltext is not None and vector and scope.reopen is not None and _spare(scope):
        # Both scan the scope: the lexical one runs meanwhile on a connection of its own.
        lexical = asyncio.ensure_future(
            _fulltext_apart(
                scope, request, config.fulltext.depth, config.lexical_scorer, lexical_facts
            )
        )
    try:
        await _vector_channels(scope, request, config, query_vec, cands)
        if config.fulltext is not None:
            cands.by_channel["fulltext"] = await (
                lexical
                if lexical is not None
                else _fulltext(
                    scope, request, config.fulltext.depth, config.lexical_scorer, lexical_facts
                )
            )
            cands.facts = lexical_facts | cands.facts
    finally:
        if lexical is not None and not lexical.done():  # the vector channel failed
            lexical.cancel()
            await asyncio.wait([lexical])
    if config.time is not None:
        periods = parse_periods(request.query, now=asked_at(request))
        if periods:
            cands.by_channel["time"] = await time_channel(
                session, base, periods, query_vec, config.time.depth
            )
    if config.graph is not None:  # 1-hop expansion from the best hits so far
        seeds = fuse(cands, config)
        cands.by_channel["graph"] = await graph_channel(session, base, seeds, config.graph.depth)
    return cands


def _spare(scope: Scope) -> bool:
    """Whether the lexical channel may run apart: no other search is ranking in this
    process (under load a spare core is rare and the second transaction is overhead) and
    the pool keeps the connection it takes (one opened past the pool's size is closed
    again when handed back: opening it costs more than the overlap saves)."""
    if caches_of(scope.session).searching >= APART_BELOW:
        return False
    bind = scope.session.bind
    pool = getattr(getattr(bind, "sync_engine", None), "pool", None)
    if not isinstance(pool, QueuePool):
        return False
    return pool.checkedout() < pool.size()


async def _fulltext_apart(
    scope: Scope,
    request: SearchRequest,
    depth: int,
    scorer: str,
    into: dict[uuid.UUID, Row[Any]],
) -> Ranked:
    """The lexical channel in a transaction of its own, scoped like the search's
    (``reopen``): Postgres runs it while the search's own connection runs the vector
    channel (at 10k memories each scan took about 7 ms; one after the other, 14)."""
    assert scope.reopen is not None
    async with scope.reopen() as other:
        apart = dataclasses.replace(scope, session=other)
        return await _fulltext(apart, request, depth, scorer, into)


async def _vector_channels(
    scope: Scope,
    request: SearchRequest,
    config: RetrievalConfig,
    query_vec: np.ndarray | None,
    cands: Candidates,
) -> None:
    """The vector channel (and the passage channel, when it ranks apart) into ``cands``."""
    session, base = scope.session, scope.base
    split = config.passages is not None
    if config.vector is not None and query_vec is not None:
        now = asked_at(request)
        if not split and await _kept_vectors(scope, query_vec, config.vector.depth, now, cands):
            return
        prepared = None
        if scope.plain:  # the prebuilt statement stands for the scope and the facts
            params = {"tenant_id": scope.tenant_id, "cube_id": scope.cube_id, "now": now}
            prepared = (_plain_nearest(scope.approximate, not split), params)
        cands.by_channel["vector"], cands.unindexed, cands.facts = await ann.nearest(
            session,
            base,
            query_vec,
            config.vector.depth,
            approximate=scope.approximate,
            cube_id=None if split else scope.cube_id,
            facts=_facts(now) if prepared is None else (),
            prepared=prepared,
        )
    if config.passages is not None and query_vec is not None:
        cands.by_channel["passage"] = await ann.nearest_passages(
            session, base, query_vec, config.passages.depth, cube_id=scope.cube_id
        )


@functools.cache
def _kept_load() -> Select[Any]:
    """The statement loading a cube's default scope into the process (built once)."""
    tenant: ColumnElement[uuid.UUID] = bindparam("tenant_id")
    cube: ColumnElement[uuid.UUID] = bindparam("cube_id")
    base = _scoped(select(Memory.id), tenant_id=tenant, cube_id=cube, filters=None, as_of=None)
    return vector_cache.load_statement(base, cube, tenant)


@functools.cache
def _kept_facts() -> Select[Any]:
    """Candidates from kept vectors, read back within the cube's default scope with their
    ranking facts (built once; ids as one array parameter)."""
    tenant: ColumnElement[uuid.UUID] = bindparam("tenant_id")
    cube: ColumnElement[uuid.UUID] = bindparam("cube_id")
    stmt = select(Memory.id, *_facts(bindparam("now")))
    stmt = _scoped(stmt, tenant_id=tenant, cube_id=cube, filters=None, as_of=None)
    ids = bindparam("ids", type_=postgresql.ARRAY(PG_UUID(as_uuid=True)))
    return stmt.where(Memory.id == any_(ids))


async def _kept_vectors(
    scope: Scope, query_vec: np.ndarray, depth: int, now: datetime, cands: Candidates
) -> bool:
    """The vector channel from the cube's vectors kept in the process, when the scope is
    the cube's default one, scored exactly, and the copy is at the database's generation
    (``memsvc.store.vector_cache``); otherwise False, and a copy is loaded in the
    background for the next searches when the cube is worth keeping."""
    kept = caches_of(scope.session).vectors
    if not (scope.exact and scope.plain and scope.vector_gen is not None):
        return False
    if not kept.keeps(scope.stats.vectors):
        return False
    key = (scope.tenant_id, scope.cube_id)
    matrix = kept.get(key, scope.vector_gen)
    if matrix is None:
        if scope.reopen is not None and kept.wants(key, scope.stats.vectors):
            scoped = {"tenant_id": scope.tenant_id, "cube_id": scope.cube_id}
            load = kept.load(key, scope.reopen, _kept_load(), scoped)
            caches_of(scope.session).spawn(asyncio.ensure_future(load))
        return False
    ranked = matrix.nearest(query_vec, depth)
    params: dict[str, Any] = {
        "tenant_id": scope.tenant_id,
        "cube_id": scope.cube_id,
        "now": now,
        "ids": [mid for mid, _ in ranked],
    }
    rows = (await scope.session.execute(_kept_facts(), params)).all()
    facts = {row.id: row for row in rows}
    cands.by_channel["vector"] = [(mid, score) for mid, score in ranked if mid in facts]
    cands.unindexed = 0
    cands.facts = facts
    return True


async def _rerank(
    scored: list[tuple[Row[Any], float]],
    query: str,
    config: RetrievalConfig,
    rerank: Rerank | None,
    cands: Candidates,
    notes: list[str],
) -> tuple[list[tuple[Row[Any], float]], bool]:
    """The head of ``scored`` reordered by the cross-encoder (recorded as the ``rerank``
    channel), and whether it ran."""
    head = scored[: config.rerank_depth]
    scores = None
    if rerank is not None:
        scores = await rerank(query, [m.index_text or m.content for m, _ in head])
    if scores is None:
        notes.append("no reranker configured: results are in fused order")
        return scored, False
    order = sorted(range(len(head)), key=lambda i: (-float(scores[i]), str(head[i][0].id)))
    cands.by_channel["rerank"] = [(head[i][0].id, float(scores[i])) for i in order]
    head = [(head[i][0], float(scores[i])) for i in order]
    return head + scored[config.rerank_depth :], True


@dataclass
class Ranking:
    """One query's fused order over its scope, before any row is loaded."""

    fused: list[tuple[uuid.UUID, float]]
    cands: Candidates
    scope: Scope


async def rank(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    request: SearchRequest,
    config: RetrievalConfig,
    query_vec: np.ndarray | None,
    exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    reopen: Reopen | None = None,
    ranker: Ranker | None = None,
    vector_gen: int | None = None,
) -> Ranking:
    """Run the configured channels and order their candidates (fused, signals or the
    learned ranker): ids and scores, best first."""
    scope = await open_scope(
        session,
        tenant_id=tenant_id,
        cube_id=cube_id,
        request=request,
        vector=config.vector is not None,
        exact_threshold=exact_threshold,
        reopen=reopen,
        vector_gen=vector_gen,
    )
    cands = await gather(scope, request, config, query_vec)
    if scope.approximate and cands.unindexed >= ann.TAIL_REPROMOTE:
        await ann.request_promotion(session, tenant_id=tenant_id, cube_id=cube_id)
    if config.ranker == "learned" and ranker is not None:
        fused = await _learned(session, fuse(cands, config), cands, ranker, request)
    else:
        fused = await _with_signals(session, fuse(cands, config), cands, config, asked_at(request))
    return Ranking(fused=fused, cands=cands, scope=scope)


async def search(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    request: SearchRequest,
    config: RetrievalConfig,
    preset: str | None,
    query_vec: np.ndarray | None,
    rerank: Rerank | None = None,
    exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    reopen: Reopen | None = None,
    ranker: Ranker | None = None,
    vector_gen: int | None = None,
) -> SearchResponse:
    """Run the configured channels, fuse, optionally rerank, and load the top results.
    ``reopen``: a new transaction scoped like ``session``, for background refreshes;
    ``vector_gen``: the cube's ``vector_gen`` as its check read it (kept vectors apply)."""
    started = time.perf_counter()
    ranking = await rank(
        session,
        tenant_id=tenant_id,
        cube_id=cube_id,
        request=request,
        config=config,
        query_vec=query_vec,
        exact_threshold=exact_threshold,
        reopen=reopen,
        ranker=ranker,
        vector_gen=vector_gen,
    )
    fused, cands, scope = ranking.fused, ranking.cands, ranking.scope
    head_n = max(request.top_k, config.rerank_depth if rerank and config.rerank else 0)
    rows = await store.rows_with_sources(session, [mid for mid, _ in fused[:head_n]])
    scored = [(rows[mid], score) for mid, score in fused[:head_n] if mid in rows]
    reranked = False
    if config.rerank and scored:
        scored, reranked = await _rerank(scored, request.query, config, rerank, cands, scope.notes)
    scored = scored[: request.top_k]
    reads = [store.read_of_row(row) for row, _ in scored]
    results = [
        SearchResult(memory=r, score=s, explain=explain(cands, r.id) if request.explain else None)
        for r, (_, s) in zip(reads, scored, strict=True)
    ]
    took = (time.perf_counter() - started) * 1000
    return SearchResponse(
        results=results,
        preset=preset,
        reranked=reranked,
        exact=not scope.approximate and config.vector is not None,
        notes=scope.notes,
        took_ms=round(took, 2),
    )
