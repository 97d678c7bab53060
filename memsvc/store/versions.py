"""Versions and provenance: the append-only history of each memory and where it came from.

Every change of a memory (create, edit, enrichment, evolution, delete, restore) appends one
``memory_version`` row, a snapshot of the memory's fields plus who made the change and why
(``Change``); ``memory_source`` names the raw inputs each version came from.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, ScalarSelect, func, insert, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import NotFound
from memsvc.schemas import (
    MemoryVersionPage,
    MemoryVersionRead,
    ProvenanceRead,
    SourceRead,
    SummaryMember,
    VersionProvenance,
)
from memsvc.schemas.decisions import DecisionRead
from memsvc.store import summaries
from memsvc.store.filters import the_memory
from memsvc.store.models import Memory, MemorySource, MemoryVersion, Source, WriteDecision
from memsvc.store.pagination import fetch_page

# Columns copied from the current state into each version row.
SNAPSHOT = [
    "content",
    "kind",
    "layer",
    "tags",
    "keywords",
    "context",
    "user_id",
    "agent_id",
    "session_id",
    "importance",
    "status",
    "valid_from",
    "valid_to",
]


@dataclass
class Change:
    """Who made a change and why: recorded on the version it creates."""

    actor: str
    change_kind: str
    reason: str | None = None
    caused_by: uuid.UUID | None = None
    policy: str | None = None
    model: str | None = None


def embedding_hash(vec: np.ndarray) -> str:
    """A short stable fingerprint of an embedding, kept on each version."""
    return hashlib.sha256(np.asarray(vec, dtype=np.float32).tobytes()).hexdigest()[:32]


def version_row(mem: Memory | Mapping[str, Any], change: Change, **extra: Any) -> dict[str, Any]:
    """The version row of a memory's current state (an ORM row or the values being
    inserted), made by ``change``; ``extra`` sets further columns (embedding, created_at)."""
    values: Mapping[str, Any] = (
        mem if isinstance(mem, Mapping) else {k: getattr(mem, k) for k in (*SNAPSHOT, *_OWN)}
    )
    row = {name: values[name] for name in SNAPSHOT}
    row.update(
        tenant_id=values["tenant_id"],
        memory_id=values["id"],
        version=values["version"],
        metadata_=values["metadata_"],
        change_kind=change.change_kind,
        actor=change.actor,
        reason=change.reason,
        caused_by=change.caused_by,
        policy=change.policy,
        model=change.model,
    )
    row.update(extra)
    return row


_OWN = ("tenant_id", "id", "version", "metadata_")


async def append(session: AsyncSession, mem: Memory, change: Change, **extra: Any) -> None:
    """Record the memory's current state as its version ``mem.version``."""
    await session.execute(insert(MemoryVersion), [version_row(mem, change, **extra)])


def sources_json(memory_id: ColumnElement[uuid.UUID] | Any) -> ScalarSelect[Any]:
    """Every source of the memory ``memory_id`` (a correlated column), as ``sources_of``
    gives them, as one JSON array: read with the memory's row, no second statement."""
    # Correlated across two levels: only explicit correlation reaches past the aggregate.
    linked = (
        select(MemorySource.source_id)
        .where(MemorySource.memory_id == memory_id)
        .correlate_except(MemorySource)
    )
    obj = func.json_build_object(
        "id", Source.id,
        "kind", Source.kind,
        "external_id", Source.external_id,
        "speaker", Source.speaker,
        "occurred_at", Source.occurred_at,
        "text", Source.text,
        "metadata", Source.metadata_,
    )  # fmt: skip
    ordered = aggregate_order_by(obj, Source.occurred_at, Source.created_at, Source.id)
    return (
        select(func.coalesce(func.json_agg(ordered), literal_column("'[]'::json")))
        .where(Source.id.in_(linked))
        .correlate_except(Source)
        .scalar_subquery()
    )


async def sources_of(
    session: AsyncSession, memory_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[SourceRead]]:
    """Every source of each memory (any version), in the order they occurred."""
    if not memory_ids:
        return {}
    rows = await session.execute(
        select(MemorySource.memory_id, Source)
        .join(Source, Source.id == MemorySource.source_id)
        .where(MemorySource.memory_id.in_(memory_ids))
        .order_by(MemorySource.memory_id, Source.occurred_at, Source.created_at, Source.id)
        .distinct()
    )
    out: dict[uuid.UUID, list[SourceRead]] = defaultdict(list)
    for mid, src in rows:
        out[mid].append(SourceRead.model_validate(src))
    return out


async def _require(session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> None:
    found = await session.execute(select(Memory.id).where(*the_memory(tenant_id, memory_id)))
    if found.first() is None:
        raise NotFound("memory not found")


async def versions(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> MemoryVersionPage:
    """The version history, oldest first."""
    await _require(session, tenant_id=tenant_id, memory_id=memory_id)
    stmt = select(MemoryVersion).where(
        MemoryVersion.memory_id == memory_id, MemoryVersion.tenant_id == tenant_id
    )
    page, nxt = await fetch_page(
        session, stmt, MemoryVersion.created_at, MemoryVersion.id, cursor=cursor, limit=limit
    )
    return MemoryVersionPage(
        items=[MemoryVersionRead.model_validate(v) for v in page], next_cursor=nxt
    )


async def version(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID, number: int
) -> MemoryVersionRead:
    """One version of a memory."""
    await _require(session, tenant_id=tenant_id, memory_id=memory_id)
    v = (
        await session.execute(
            select(MemoryVersion).where(
                MemoryVersion.memory_id == memory_id,
                MemoryVersion.tenant_id == tenant_id,
                MemoryVersion.version == number,
            )
        )
    ).scalar_one_or_none()
    if v is None:
        raise NotFound(f"memory has no version {number}")
    return MemoryVersionRead.model_validate(v)


async def provenance(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID
) -> ProvenanceRead:
    """For each version: actor, policy/model, causing memory and the sources it came from."""
    await _require(session, tenant_id=tenant_id, memory_id=memory_id)
    vers = (
        await session.execute(
            select(MemoryVersion)
            .where(MemoryVersion.memory_id == memory_id, MemoryVersion.tenant_id == tenant_id)
            .order_by(MemoryVersion.version)
        )
    ).scalars()
    src_rows = await session.execute(
        select(MemorySource.version, Source)
        .join(Source, Source.id == MemorySource.source_id)
        .where(MemorySource.memory_id == memory_id)
        .order_by(Source.occurred_at, Source.id)
    )
    by_version: dict[int, list[SourceRead]] = defaultdict(list)
    for n, src in src_rows:
        by_version[n].append(SourceRead.model_validate(src))
    covers = await summaries.summarises(session, summary_id=memory_id)
    decided: dict[int, list[DecisionRead]] = defaultdict(list)
    for d in (
        await session.execute(
            select(WriteDecision)
            .where(WriteDecision.memory_id == memory_id, WriteDecision.tenant_id == tenant_id)
            .order_by(WriteDecision.id)
        )
    ).scalars():
        decided[int(d.memory_version or 0)].append(DecisionRead.model_validate(d))
    return ProvenanceRead(
        memory_id=memory_id,
        versions=[
            VersionProvenance.model_validate(v).model_copy(
                update={
                    "sources": by_version.get(v.version, []),
                    "summarises": [
                        SummaryMember(memory_id=mid, version=mv)
                        for mid, mv in covers.get(v.version, [])
                    ],
                    "decisions": decided.get(v.version, []),
                }
            )
            for v in vers
        ],
    )
