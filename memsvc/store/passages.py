"""Passage vectors of a memory (``MemoryPassage``): a long memory's later text windows, and
the messages a merged memory was folded from (``memsvc.policy.ingest``). Written with the
memory, replaced when its content changes, erased with it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.models import Memory, MemoryPassage


async def write(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    texts: Sequence[tuple[uuid.UUID, Sequence[str]]],
    vectors: Sequence[np.ndarray],
) -> int:
    """Insert each memory's passage vectors: ``vectors`` are those of ``texts``' passages,
    in order (one embedding call for all); how many rows were written."""
    per: list[tuple[uuid.UUID, Sequence[np.ndarray]]] = []
    at = 0
    for mid, passages in texts:
        per.append((mid, vectors[at : at + len(passages)]))
        at += len(passages)
    if len(vectors) != at:
        raise ValueError(f"{len(vectors)} vectors for {at} passages")
    return await write_vectors(session, tenant_id=tenant_id, cube_id=cube_id, vectors=per)


async def write_vectors(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    vectors: Sequence[tuple[uuid.UUID, Sequence[np.ndarray]]],
) -> int:
    """Insert each memory's passage vectors (``idx`` in order); how many rows were written."""
    rows: list[dict[str, Any]] = [
        {"memory_id": mid, "idx": i, "tenant_id": tenant_id, "cube_id": cube_id, "embedding": v}
        for mid, vs in vectors
        for i, v in enumerate(vs)
    ]
    if rows:
        await session.execute(insert(MemoryPassage), rows)
    return len(rows)


async def stored_vectors(session: AsyncSession, memory_id: uuid.UUID) -> list[np.ndarray]:
    """A memory's vectors as stored: its own embedding (when it has one), then its passages."""
    own = await session.execute(select(Memory.embedding).where(Memory.id == memory_id))
    rows = await session.execute(
        select(MemoryPassage.embedding)
        .where(MemoryPassage.memory_id == memory_id)
        .order_by(MemoryPassage.idx)
    )
    first = own.scalar_one_or_none()
    return [np.asarray(v, dtype=np.float32) for v in [first, *rows.scalars()] if v is not None]


async def drop(session: AsyncSession, memory_id: uuid.UUID) -> None:
    """Remove a memory's passages (its content changed, or it is erased)."""
    await session.execute(delete(MemoryPassage).where(MemoryPassage.memory_id == memory_id))
