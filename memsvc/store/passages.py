"""Passage vectors of long memories (``MemoryPassage``): written with the memory, replaced
when its content changes, erased with it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.models import MemoryPassage


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
    rows: list[dict[str, Any]] = []
    at = 0
    for mid, passages in texts:
        for i in range(len(passages)):
            rows.append(
                {
                    "memory_id": mid,
                    "idx": i,
                    "tenant_id": tenant_id,
                    "cube_id": cube_id,
                    "embedding": vectors[at + i],
                }
            )
        at += len(passages)
    if len(vectors) != at:
        raise ValueError(f"{len(vectors)} vectors for {at} passages")
    if rows:
        await session.execute(insert(MemoryPassage), rows)
    return len(rows)


async def drop(session: AsyncSession, memory_id: uuid.UUID) -> None:
    """Remove a memory's passages (its content changed, or it is erased)."""
    await session.execute(delete(MemoryPassage).where(MemoryPassage.memory_id == memory_id))
