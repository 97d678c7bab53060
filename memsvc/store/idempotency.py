"""Idempotency keys: a retried request replays the first answer instead of writing twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import Conflict, Gone
from memsvc.store.models import IdempotencyRecord

# ``request_hash`` of a record whose answer was erased with a memory it created.
ERASED = "erased"


@dataclass(frozen=True)
class Replay:
    """The stored answer of an earlier request with the same key and body."""

    status_code: int
    body: dict[str, Any]


async def claim(
    session: AsyncSession, *, tenant_id: uuid.UUID, key: str, request_hash: str
) -> Replay | None:
    """Reserve ``key`` in this transaction, or return the answer already recorded for it.

    A concurrent request with the same key blocks on the row until the first commits,
    then replays its answer; a reused key with a different body is a 409, and a key whose
    memories were erased since is a 410 (whatever the body).
    """
    inserted = (
        await session.execute(
            insert(IdempotencyRecord)
            .values(
                tenant_id=tenant_id, key=key, request_hash=request_hash, status_code=0, response={}
            )
            .on_conflict_do_nothing()
            .returning(IdempotencyRecord.key)
        )
    ).first()
    if inserted is not None:
        return None
    rec = (
        await session.execute(
            select(IdempotencyRecord).where(
                IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key
            )
        )
    ).scalar_one()
    if rec.request_hash == ERASED:
        raise Gone(
            "what this request created was erased; its answer is not kept",
            code="memory_erased",
            detail=rec.response,
        )
    if rec.request_hash != request_hash:
        raise Conflict(
            "Idempotency-Key was used with a different request body", code="idempotency_mismatch"
        )
    return Replay(status_code=rec.status_code, body=rec.response)


async def answered(session: AsyncSession, *, tenant_id: uuid.UUID, key: str) -> bool:
    """Whether a request with ``key`` has already been answered (a retry replays it)."""
    row = await session.execute(
        select(IdempotencyRecord.key).where(
            IdempotencyRecord.tenant_id == tenant_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.status_code != 0,
        )
    )
    return row.first() is not None


async def record(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    key: str,
    status_code: int,
    body: dict[str, Any],
) -> None:
    """Store the answer to replay for ``key`` (same transaction as the write)."""
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key)
        .values(status_code=status_code, response=body)
    )


async def tombstone(session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> int:
    """Replace the stored answers that hold ``memory_id`` with a tombstone naming only ids:
    what was erased and what the same request created that is kept. Returns how many."""
    mid = str(memory_id)
    recs = (
        await session.execute(
            select(IdempotencyRecord).where(
                IdempotencyRecord.tenant_id == tenant_id,
                or_(
                    IdempotencyRecord.response["items"].contains([{"id": mid}]),
                    IdempotencyRecord.response["kept"].contains([mid]),
                    # An ingest's answer (``IngestResponse``): its memories and core block.
                    IdempotencyRecord.response["memories"].contains([{"id": mid}]),
                    IdempotencyRecord.response["core"].contains({"id": mid}),
                ),
            )
        )
    ).scalars()
    n = 0
    for rec in recs:
        if rec.request_hash == ERASED:
            erased, ids = [*rec.response["erased"], mid], list(rec.response["kept"])
        else:
            body = rec.response
            held = body.get("items") or [
                *body.get("memories", []),
                *([body["core"]] if body.get("core") else []),
            ]
            erased, ids = [mid], [str(item["id"]) for item in held]
        rec.request_hash = ERASED
        rec.status_code = Gone.status
        rec.response = {"erased": erased, "kept": [i for i in ids if i != mid]}
        n += 1
    await session.flush()
    return n
