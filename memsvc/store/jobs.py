"""The job table's write side: enqueue inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.models import Job, core_table


async def enqueue_many(
    session: AsyncSession,
    *,
    kind: str,
    payloads: Sequence[dict[str, Any]],
    tenant_id: uuid.UUID | None,
    max_attempts: int = 5,
) -> None:
    """Queue jobs in the caller's transaction: they exist iff the caller's write commits."""
    if payloads:
        await session.execute(
            insert(core_table(Job)),
            [
                {"kind": kind, "payload": p, "tenant_id": tenant_id, "max_attempts": max_attempts}
                for p in payloads
            ],
        )
