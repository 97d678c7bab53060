"""Hybrid search: pgvector kNN + Postgres full-text, fused by weighted reciprocal rank."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.schemas import (
    ChannelHit,
    RetrievalConfig,
    SearchFilters,
    SearchRequest,
    SearchResponse,
    SearchResult,
)
from memsvc.store import memories as store
from memsvc.store.models import Memory

_WORD = re.compile(r"[A-Za-z0-9]+")

Embed = Callable[[str], Awaitable[np.ndarray]]
Rerank = Callable[[str, list[str]], Awaitable[np.ndarray | None]]


@dataclass
class Candidates:
    """Per-channel rankings of memory ids: channel -> [(id, score)] best first."""

    by_channel: dict[str, list[tuple[uuid.UUID, float]]] = field(default_factory=dict)


def _scoped(
    stmt: Select[Any],
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    filters: SearchFilters | None,
    as_of: datetime | None,
) -> Select[Any]:
    stmt = stmt.where(Memory.tenant_id == tenant_id, Memory.cube_id == cube_id)
    f = filters or SearchFilters()
    if f.include_deleted:
        stmt = stmt.where(Memory.status.in_(("active", "deleted")))
    else:
        stmt = stmt.where(Memory.status == "active")
    if f.kinds:
        stmt = stmt.where(Memory.kind.in_(f.kinds))
    if f.layers:
        stmt = stmt.where(Memory.layer.in_(f.layers))
    if f.tags:
        stmt = stmt.where(Memory.tags.overlap(f.tags))
    for col, val in (
        (Memory.user_id, f.user_id),
        (Memory.agent_id, f.agent_id),
        (Memory.session_id, f.session_id),
    ):
        if val is not None:
            stmt = stmt.where(col == val)
    if f.created_after:
        stmt = stmt.where(Memory.created_at >= f.created_after)
    if f.created_before:
        stmt = stmt.where(Memory.created_at < f.created_before)
    if as_of is not None:
        stmt = stmt.where(
            Memory.created_at <= as_of,
            or_(Memory.valid_from.is_(None), Memory.valid_from <= as_of),
            or_(Memory.valid_to.is_(None), Memory.valid_to > as_of),
        )
    return stmt


def tsquery_text(query: str) -> str | None:
    """An OR query of the words in ``query`` (safe: only alphanumerics reach to_tsquery)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    return " | ".join(words) if words else None


async def vector_channel(
    session: AsyncSession, base: Select[Any], vec: np.ndarray, depth: int
) -> list[tuple[uuid.UUID, float]]:
    """Nearest memories by cosine distance (HNSW with iterative scan under filters)."""
    await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    dist = Memory.embedding.cosine_distance(vec)
    stmt = base.add_columns(dist.label("d")).where(Memory.embedding.is_not(None))
    rows = await session.execute(stmt.order_by(dist).limit(depth))
    return [(mid, 1.0 - float(d)) for mid, d in rows]


async def fulltext_channel(
    session: AsyncSession, base: Select[Any], query: str, depth: int
) -> list[tuple[uuid.UUID, float]]:
    """Memories matching any query word, ranked by ts_rank_cd."""
    q = tsquery_text(query)
    if q is None:
        return []
    tsq = func.to_tsquery("english", q)
    rank = func.ts_rank_cd(Memory.tsv, tsq, 32)
    stmt = base.add_columns(rank.label("r")).where(Memory.tsv.op("@@")(tsq))
    rows = await session.execute(stmt.order_by(rank.desc(), Memory.id).limit(depth))
    return [(mid, float(r)) for mid, r in rows]


def fuse(cands: Candidates, cfg: RetrievalConfig) -> list[tuple[uuid.UUID, float]]:
    """Weighted reciprocal-rank fusion over channels."""
    weights = {"vector": cfg.vector, "fulltext": cfg.fulltext, "time": cfg.time, "graph": cfg.graph}
    scores: dict[uuid.UUID, float] = {}
    for channel, ranked in cands.by_channel.items():
        ch = weights.get(channel)
        w = ch.weight if ch is not None else 1.0
        for rank, (mid, _) in enumerate(ranked, start=1):
            scores[mid] = scores.get(mid, 0.0) + w / (cfg.rrf_k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], str(kv[0])))


def explain(cands: Candidates, mid: uuid.UUID) -> dict[str, ChannelHit]:
    """Each channel's rank and raw score for one result."""
    out: dict[str, ChannelHit] = {}
    for channel, ranked in cands.by_channel.items():
        for rank, (cid, score) in enumerate(ranked, start=1):
            if cid == mid:
                out[channel] = ChannelHit(rank=rank, score=score)
                break
    return out


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
) -> SearchResponse:
    """Run the configured channels, fuse, optionally rerank, and load the top results."""
    started = time.perf_counter()
    base = _scoped(
        select(Memory.id),
        tenant_id=tenant_id,
        cube_id=cube_id,
        filters=request.filters,
        as_of=request.as_of,
    )
    cands = Candidates()
    if config.vector is not None and query_vec is not None:
        cands.by_channel["vector"] = await vector_channel(
            session, base, query_vec, config.vector.depth
        )
    if config.fulltext is not None:
        cands.by_channel["fulltext"] = await fulltext_channel(
            session, base, request.query, config.fulltext.depth
        )
    fused = fuse(cands, config)
    top_ids = [mid for mid, _ in fused[: max(request.top_k, config.rerank_depth if rerank else 0)]]
    rows = {
        m.id: m
        for m in (await session.execute(select(Memory).where(Memory.id.in_(top_ids)))).scalars()
    }
    scored = [(rows[mid], score) for mid, score in fused if mid in rows]
    if rerank is not None and config.rerank and scored:
        head = scored[: config.rerank_depth]
        scores = await rerank(request.query, [m.index_text or m.content for m, _ in head])
        if scores is not None:
            head = sorted(
                ((m, float(s)) for (m, _), s in zip(head, scores, strict=True)),
                key=lambda t: -t[1],
            )
            scored = head + scored[config.rerank_depth :]
    scored = scored[: request.top_k]
    reads = await store.read_many(session, [m for m, _ in scored])
    results = [
        SearchResult(memory=r, score=s, explain=explain(cands, r.id) if request.explain else None)
        for r, (_, s) in zip(reads, scored, strict=True)
    ]
    took = (time.perf_counter() - started) * 1000
    return SearchResponse(results=results, preset=preset, took_ms=round(took, 2))
