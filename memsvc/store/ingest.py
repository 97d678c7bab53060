"""What ``ingest`` (``memsvc.policy.ingest``) reads and writes besides memories: the messages
as sources, the nearest memories of each message, the thread a message continues, the core
blocks, and the decisions (``write_decision``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Select, bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.schemas.decisions import DecisionRead
from memsvc.schemas.ingest import DecisionFilters, DecisionPage
from memsvc.schemas.memories import SUMMARY_KIND
from memsvc.store import ann
from memsvc.store.models import (
    Job,
    Memory,
    MemorySource,
    Source,
    WriteDecision,
    core_table,
)
from memsvc.store.pagination import fetch_page

# The kind of a scope's core block (layer ``core``): one per (cube, user_id, agent_id).
CORE_KIND = "profile"


async def add_sources(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Store messages as sources (ids chosen by the caller)."""
    if rows:
        values = [{**r, "metadata": r.get("metadata", {})} for r in rows]
        await session.execute(insert(core_table(Source)), values)


async def link_sources(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    version: int,
    source_ids: Sequence[uuid.UUID],
) -> None:
    """Name ``source_ids`` as what version ``version`` of a memory came from."""
    if source_ids:
        await session.execute(
            insert(core_table(MemorySource)),
            [
                {"memory_id": memory_id, "version": version, "source_id": s, "tenant_id": tenant_id}
                for s in dict.fromkeys(source_ids)
            ],
        )


def _snapshot(session: AsyncSession, mem: Memory) -> Memory:
    """A row as read, detached: the writes that follow (``UPDATE ... RETURNING``) must not
    meet it in the session's identity map and return its stale state."""
    session.expunge(mem)
    return mem


def _live(tenant_id: uuid.UUID, cube_id: uuid.UUID) -> Select[Any]:
    return select(Memory.id).where(
        Memory.tenant_id == tenant_id,
        Memory.cube_id == cube_id,
        Memory.status == "active",
        Memory.kind != SUMMARY_KIND,
        Memory.layer != "core",
    )


_EXACT_MANY = text(
    """
    SELECT q.i, m.id, 1 - (m.embedding <=> q.v::vector) AS sim
    FROM unnest(CAST(:vecs AS text[])) WITH ORDINALITY AS q(v, i)
    CROSS JOIN LATERAL (
        SELECT id, embedding FROM memory
        WHERE tenant_id = :tenant AND cube_id = :cube AND status = 'active'
          AND kind <> :summary AND layer <> 'core' AND embedding IS NOT NULL
        ORDER BY (embedding <=> q.v::vector) + 0, id
        LIMIT :k
    ) m
    """
).bindparams(bindparam("vecs"), bindparam("tenant"), bindparam("cube"), bindparam("k"))


def _vec_text(v: np.ndarray) -> str:
    return "[" + ",".join("%.7g" % f for f in np.asarray(v, dtype=np.float32).tolist()) + "]"  # noqa: UP031


async def nearest(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    vectors: Sequence[np.ndarray],
    k: int,
) -> list[list[tuple[uuid.UUID, float]]]:
    """For each vector, the ``k`` live memories of the cube closest to it (id, cosine
    similarity), best first; summaries and core blocks are not neighbours. Exact, in one
    statement, below the HNSW threshold; a promoted cube asks its index once per vector."""
    out: list[list[tuple[uuid.UUID, float]]] = [[] for _ in vectors]
    if not vectors or k <= 0:
        return out
    if await ann.is_indexed(session, cube_id):
        base = _live(tenant_id, cube_id)
        for i, v in enumerate(vectors):
            ranked, _, _ = await ann.nearest(session, base, v, k, approximate=True)
            out[i] = ranked
        return out
    rows = await session.execute(
        _EXACT_MANY,
        {
            "vecs": [_vec_text(v) for v in vectors],
            "tenant": tenant_id,
            "cube": cube_id,
            "k": k,
            "summary": SUMMARY_KIND,
        },
    )
    for i, mid, sim in rows:
        out[int(i) - 1].append((mid, float(sim)))
    for ranked in out:
        ranked.sort(key=lambda t: (-t[1], str(t[0])))
    return out


async def memories_by_id(
    session: AsyncSession, *, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Memory]:
    """The tenant's memories of ``ids`` (any status), by id."""
    if not ids:
        return {}
    rows = await session.execute(
        select(Memory).where(Memory.tenant_id == tenant_id, Memory.id.in_(list(set(ids))))
    )
    return {m.id: _snapshot(session, m) for m in rows.scalars()}


# How far back in a session ``thread_tail`` looks for each side's last memory.
_TAIL_LOOKBACK = 16


@dataclass
class Tail:
    """Where a session thread stands before a request: its last live memory (a merge
    target) with how many messages it holds, how many memories the session has, and the
    last memory of each side (``user``: holds a person's message; ``agent``: only replies
    of the assistant, a tool or the system) with its message count."""

    last: Memory | None = None
    held: int = 0
    count: int = 0
    sides: dict[str, tuple[Memory, int]] = field(default_factory=dict)


async def thread_tail(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    session_id: str,
) -> Tail:
    """The session thread's ``Tail`` (two statements, three when the session has memories)."""
    in_session = (
        Memory.tenant_id == tenant_id,
        Memory.cube_id == cube_id,
        Memory.session_id == session_id,
        Memory.kind != SUMMARY_KIND,
        Memory.layer != "core",
    )
    # A memory is the user's side when one of its sources is a person's message (a source
    # without a role, written by another path, counts as a person's).
    persons = (
        select(MemorySource.memory_id)
        .join(Source, Source.id == MemorySource.source_id)
        .where(
            MemorySource.memory_id == Memory.id,
            func.coalesce(Source.metadata_["role"].astext, "user") == "user",
        )
        .exists()
    )
    recent = (
        await session.execute(
            select(Memory, persons.label("user_side"))
            .where(*in_session, Memory.status == "active")
            .order_by(Memory.created_at.desc(), Memory.id.desc())
            .limit(_TAIL_LOOKBACK)
        )
    ).all()
    count = (await session.execute(select(func.count()).where(*in_session))).scalar_one()
    if not recent:
        return Tail(count=int(count))
    for mem, _ in recent:
        _snapshot(session, mem)
    firsts: dict[str, Memory] = {}
    for mem, user_side in recent:
        firsts.setdefault("user" if user_side else "agent", mem)
    last = recent[0][0]  # the first of its own side
    held = dict(
        (
            await session.execute(
                select(MemorySource.memory_id, func.count(func.distinct(MemorySource.source_id)))
                .where(MemorySource.memory_id.in_([m.id for m in firsts.values()]))
                .group_by(MemorySource.memory_id)
            )
        ).all()
    )
    return Tail(
        last=last,
        held=int(held.get(last.id, 0)),
        count=int(count),
        sides={side: (m, int(held.get(m.id, 0))) for side, m in firsts.items()},
    )


def _scope(user_id: str | None, agent_id: str | None) -> list[Any]:
    return [
        Memory.user_id.is_not_distinct_from(user_id),
        Memory.agent_id.is_not_distinct_from(agent_id),
    ]


async def lock_core(
    session: AsyncSession, *, cube_id: uuid.UUID, user_id: str | None, agent_id: str | None
) -> None:
    """Serialise the writers of one scope's core block until the transaction ends (two
    concurrent ingests must not create two blocks)."""
    key = f"core|{cube_id}|{user_id or ''}|{agent_id or ''}"
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


async def core_block(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    user_id: str | None,
    agent_id: str | None,
) -> Memory | None:
    """The live core block of a scope (the oldest, should a client have written two)."""
    row = await session.execute(
        select(Memory)
        .where(
            Memory.tenant_id == tenant_id,
            Memory.cube_id == cube_id,
            Memory.layer == "core",
            Memory.kind == CORE_KIND,
            Memory.status == "active",
            *_scope(user_id, agent_id),
        )
        .order_by(Memory.created_at, Memory.id)
        .limit(1)
    )
    mem = row.scalar_one_or_none()
    return None if mem is None else _snapshot(session, mem)


async def core_blocks(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    user_id: str | None = None,
    agent_id: str | None = None,
    scoped: bool = False,
) -> list[Memory]:
    """The cube's live core blocks (with ``scoped``: only the one of that scope)."""
    stmt = select(Memory).where(
        Memory.tenant_id == tenant_id,
        Memory.cube_id == cube_id,
        Memory.layer == "core",
        Memory.kind == CORE_KIND,
        Memory.status == "active",
    )
    if scoped:
        stmt = stmt.where(*_scope(user_id, agent_id))
    rows = await session.execute(stmt.order_by(Memory.created_at, Memory.id))
    return list(rows.scalars())


async def record_decisions(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Store decisions; their ids in order."""
    if not rows:
        return []
    res = await session.execute(
        insert(core_table(WriteDecision)).returning(core_table(WriteDecision).c.id), list(rows)
    )
    return [int(r[0]) for r in res]


async def decisions(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    filters: DecisionFilters,
    cursor: str | None,
    limit: int,
) -> DecisionPage:
    """A page of a cube's decisions, oldest first."""
    stmt = select(WriteDecision).where(
        WriteDecision.tenant_id == tenant_id, WriteDecision.cube_id == cube_id
    )
    if filters.operation is not None:
        stmt = stmt.where(WriteDecision.operation == filters.operation)
    if filters.ingest_id is not None:
        stmt = stmt.where(WriteDecision.ingest_id == filters.ingest_id)
    if filters.memory_id is not None:
        stmt = stmt.where(
            (WriteDecision.memory_id == filters.memory_id)
            | (WriteDecision.target_id == filters.memory_id)
        )
    page, nxt = await fetch_page(
        session, stmt, WriteDecision.created_at, WriteDecision.id, cursor=cursor, limit=limit
    )
    return DecisionPage(items=[DecisionRead.model_validate(d) for d in page], next_cursor=nxt)


async def enqueue(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    kind: str,
    payload: dict[str, Any],
    max_attempts: int,
) -> int:
    """Queue one job in the caller's transaction; its id."""
    res = await session.execute(
        insert(core_table(Job)).returning(core_table(Job).c.id),
        [{"kind": kind, "tenant_id": tenant_id, "max_attempts": max_attempts, "payload": payload}],
    )
    return int(res.scalar_one())


async def decision_counts(
    session: AsyncSession, *, tenant_id: uuid.UUID, ingest_id: uuid.UUID
) -> dict[str, int]:
    """Decisions of one ingest by operation (empty: it has not run)."""
    rows = await session.execute(
        select(WriteDecision.operation, func.count())
        .where(WriteDecision.tenant_id == tenant_id, WriteDecision.ingest_id == ingest_id)
        .group_by(WriteDecision.operation)
    )
    return {op: int(n) for op, n in rows}
