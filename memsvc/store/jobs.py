"""The job table's write side: enqueue inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
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
    run_after_s: float = 0.0,
) -> None:
    """Queue jobs in the caller's transaction: they exist iff the caller's write commits.
    ``run_after_s``: not before this many seconds from now."""
    if payloads:
        row: dict[str, Any] = {"kind": kind, "tenant_id": tenant_id, "max_attempts": max_attempts}
        if run_after_s > 0:
            row["run_after"] = datetime.now(UTC) + timedelta(seconds=run_after_s)
        await session.execute(insert(core_table(Job)), [{**row, "payload": p} for p in payloads])
