"""Retrieval traces: what each ``ask`` did, kept for a retention period.

A trace is written once, at the end of its ask, in the ask's own transaction, and read by
``GET /v1/traces/{id}`` and the admin view. Expired traces of the tenant are pruned a few at
a time by the next trace written (no extra job). A hard erase of a memory deletes every trace
that names it (``memory_ids``), since probes and cues may quote it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.schemas import AskResponse, TraceRead, TraceStep
from memsvc.store.models import RetrievalTrace

# Expired traces deleted per trace written: bounded work on the request path.
PRUNE_BATCH = 50


async def save(
    session: AsyncSession,
    *,
    trace_id: uuid.UUID,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    question: str,
    request: dict[str, object],
    steps: Sequence[TraceStep],
    response: AskResponse,
    retention_days: float,
) -> None:
    """Store one ask's trace and prune a few expired ones."""
    now = datetime.now(UTC)
    named = {e.memory.id for e in response.evidence}
    for step in steps:
        named.update(step.found or ())
    session.add(
        RetrievalTrace(
            id=trace_id,
            tenant_id=tenant_id,
            cube_id=cube_id,
            question=question,
            mode=response.mode,
            request=request,
            steps=[s.model_dump(mode="json", exclude_none=True) for s in steps],
            response={
                "answer": response.answer,
                "cues": response.cues,
                "evidence_ids": [str(e.memory.id) for e in response.evidence],
                "cycles": response.cycles,
            },
            memory_ids=sorted(named, key=str),
            llm_calls=response.llm_calls,
            tokens=response.tokens,
            took_ms=response.took_ms,
            stopped=response.stopped,
            created_at=now,
            expires_at=now + timedelta(days=retention_days),
        )
    )
    expired = (
        select(RetrievalTrace.id)
        .where(RetrievalTrace.tenant_id == tenant_id, RetrievalTrace.expires_at < now)
        .limit(PRUNE_BATCH)
        .scalar_subquery()
    )
    await session.execute(delete(RetrievalTrace).where(RetrievalTrace.id.in_(expired)))
    await session.flush()


async def get(
    session: AsyncSession, trace_id: uuid.UUID, *, tenant_id: uuid.UUID
) -> TraceRead | None:
    """A live trace of ``tenant_id``, or None (unknown, expired or another tenant's): the
    owner is checked here too, not only by row-level security (which may be off)."""
    row = await session.get(RetrievalTrace, trace_id)
    if row is None or row.expires_at <= datetime.now(UTC):
        return None
    if row.tenant_id != tenant_id:
        return None
    return _read(row)


def _read(row: RetrievalTrace) -> TraceRead:
    resp = row.response
    return TraceRead(
        id=row.id,
        cube_id=row.cube_id,
        question=row.question,
        mode=row.mode,
        steps=[TraceStep.model_validate(s) for s in row.steps],
        evidence_ids=[uuid.UUID(i) for i in resp.get("evidence_ids", [])],
        answer=resp.get("answer"),
        cues=list(resp.get("cues", [])),
        llm_calls=row.llm_calls,
        tokens=row.tokens,
        took_ms=row.took_ms,
        stopped=row.stopped,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


async def list_recent(
    session: AsyncSession,
    cube_id: uuid.UUID,
    *,
    limit: int = 50,
    tenant_id: uuid.UUID,
) -> list[TraceRead]:
    """A cube's latest live traces of ``tenant_id``, newest first (the admin view's list)."""
    rows = (
        await session.execute(
            select(RetrievalTrace)
            .where(
                RetrievalTrace.cube_id == cube_id,
                RetrievalTrace.expires_at > datetime.now(UTC),
                RetrievalTrace.tenant_id == tenant_id,
            )
            .order_by(RetrievalTrace.created_at.desc(), RetrievalTrace.id)
            .limit(limit)
        )
    ).scalars()
    return [_read(row) for row in rows]


async def forget_memory(session: AsyncSession, memory_ids: Sequence[uuid.UUID]) -> int:
    """Delete every trace that names any of ``memory_ids`` (a hard erase); how many."""
    if not memory_ids:
        return 0
    res = await session.execute(
        delete(RetrievalTrace)
        .where(RetrievalTrace.memory_ids.overlap(list(memory_ids)))
        .returning(RetrievalTrace.id)
    )
    return len(res.all())
