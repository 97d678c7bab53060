"""Export and import of a whole cube: rows as ``memsvc.schemas.transfer`` records.

Export reads in one REPEATABLE READ, READ ONLY transaction (one snapshot, so a write
during a long export cannot tear it), page by page. Import inserts with
``ON CONFLICT DO NOTHING`` on ids derived from the target cube (``new_id``): a line sent
twice writes once, which is what makes a resumed import safe.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from memsvc.schemas.transfer import (
    LinkRecord,
    MemoryRecord,
    SourceRecord,
    TransferCounts,
    VersionRecord,
)
from memsvc.store.caches import caches_of
from memsvc.store.db import Database, scope_to_tenant
from memsvc.store.models import (
    EMBEDDING_DIM,
    Link,
    Memory,
    MemorySource,
    MemoryVersion,
    Source,
    core_table,
)
from memsvc.store.pagination import pages

PAGE = 200
# Records are built from stored rows without validation (``model_construct``): a row the
# current schema would refuse (a limit lowered since) must not break an export mid-stream;
# the import side validates every line.


def new_id(cube_id: uuid.UUID, exported: str) -> uuid.UUID:
    """The id a record exported as ``exported`` gets in cube ``cube_id``."""
    return uuid.uuid5(cube_id, exported)


def encode_vector(vec: Any) -> str:
    """An embedding as base64 of float32 little-endian."""
    return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()


def decode_vector(data: str) -> np.ndarray | None:
    """The embedding of ``encode_vector``, unit-norm as every stored vector is (search
    scores by inner product: ``memsvc.store.ann.exact_distance``), or None when it is not
    one of ours (size, NaN, zero): the memory is then embedded again."""
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        return None
    if len(raw) != 4 * EMBEDDING_DIM:
        return None
    vec = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not bool(np.isfinite(vec).all()):
        return None
    norm = float(np.linalg.norm(vec))
    if not (norm > 1e-6 and math.isfinite(norm)):
        return None
    # Ours are unit-norm already and come back bit for bit; others are scaled to unit.
    return vec if abs(norm - 1.0) <= 1e-4 else (vec / norm).astype(np.float32)


@asynccontextmanager
async def snapshot(db: Database, tenant_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
    """A read-only transaction on one snapshot, scoped to the tenant."""
    async with db.transaction() as session:
        # Must be the transaction's first statement.
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        await scope_to_tenant(session, tenant_id, rls=db.rls)
        yield session


# -- export -------------------------------------------------------------------------------


async def export_sources(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID
) -> AsyncIterator[SourceRecord]:
    """Every source of the cube, oldest first."""
    q = select(Source).where(Source.tenant_id == tenant_id, Source.cube_id == cube_id)
    async for rows in pages(session, q, Source.created_at, Source.id, size=PAGE):
        for s in rows:
            yield SourceRecord.model_construct(**_fields(s, SourceRecord, id=str(s.id)))


async def export_memories(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID
) -> AsyncIterator[MemoryRecord]:
    """Every memory of the cube (soft-deleted ones too, erased ones not), oldest first,
    with every version."""
    q = (
        select(Memory)
        # An erased memory is gone for every reader (its content blanked everywhere).
        .where(Memory.tenant_id == tenant_id, Memory.cube_id == cube_id, Memory.status != "erased")
        .execution_options(populate_existing=True)
        .options(undefer(Memory.embedding))
    )
    async for rows in pages(session, q, Memory.created_at, Memory.id, size=PAGE):
        history = await _versions(session, [m.id for m in rows])
        for m in rows:
            yield _memory_record(m, cube_id, history.get(m.id, []))


async def _versions(
    session: AsyncSession, memory_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[VersionRecord]]:
    if not memory_ids:
        return {}
    used: dict[tuple[uuid.UUID, int], list[str]] = defaultdict(list)
    links = await session.execute(
        select(MemorySource.memory_id, MemorySource.version, MemorySource.source_id)
        .where(MemorySource.memory_id.in_(memory_ids))
        .order_by(MemorySource.memory_id, MemorySource.version, MemorySource.source_id)
    )
    for mid, n, sid in links:
        used[(mid, n)].append(str(sid))
    rows = await session.scalars(
        select(MemoryVersion)
        .where(MemoryVersion.memory_id.in_(memory_ids))
        .order_by(MemoryVersion.memory_id, MemoryVersion.version)
    )
    out: dict[uuid.UUID, list[VersionRecord]] = defaultdict(list)
    for v in rows:
        out[v.memory_id].append(
            VersionRecord.model_construct(
                **_fields(
                    v,
                    VersionRecord,
                    caused_by=str(v.caused_by) if v.caused_by else None,
                    sources=used.get((v.memory_id, v.version), []),
                )
            )
        )
    return out


def _memory_record(m: Memory, cube_id: uuid.UUID, versions: list[VersionRecord]) -> MemoryRecord:
    # The model of the current embedding: the last version that was embedded (enrichment
    # versions keep the embedding and record none).
    model = next((v.embedding_model for v in reversed(versions) if v.embedding_model), None)
    return MemoryRecord.model_construct(
        **_fields(
            m,
            MemoryRecord,
            id=str(m.id),
            cube_id=str(cube_id),
            embedding=encode_vector(m.embedding) if m.embedding is not None else None,
            embedding_model=model,
            versions=versions,
        )
    )


# A record field's column attribute where the two names differ.
_ORM_NAME = {"metadata": "metadata_"}


def _fields(row: Any, record: type[BaseModel], **given: Any) -> dict[str, Any]:
    """A record's fields read off a stored row by name (the one list of them is the record
    model), with ``given`` for those that are computed; the rest take their defaults."""
    out = {
        name: getattr(row, _ORM_NAME.get(name, name))
        for name in record.model_fields
        if name not in given and _ORM_NAME.get(name, name) in row.__mapper__.attrs
    }
    for name in ("tags", "keywords", "rebased_over"):
        if name in out:
            out[name] = list(out[name] or [])
    if "metadata" in out:
        out["metadata"] = out["metadata"] or {}
    return {**out, **given}


async def export_links(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID
) -> AsyncIterator[LinkRecord]:
    """Every link of the cube (retired ones too), oldest first."""
    q = select(Link).where(Link.tenant_id == tenant_id, Link.cube_id == cube_id)
    async for rows in pages(session, q, Link.created_at, Link.id, size=PAGE):
        for link in rows:
            yield LinkRecord.model_construct(
                id=str(link.id),
                source_id=str(link.source_id),
                target_id=str(link.target_id),
                relation=link.relation,
                weight=link.weight,
                reason=link.reason,
                created_by=link.created_by,
                status=link.status,
                provenance=link.provenance or {},
                created_at=link.created_at,
            )


# -- import -------------------------------------------------------------------------------


@dataclass
class ImportBatch:
    """Validated records of one import request, ids already mapped into the target cube."""

    sources: list[dict[str, Any]] = field(default_factory=list)
    memories: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    memory_sources: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)


async def existing(
    session: AsyncSession,
    *,
    cube_id: uuid.UUID,
    sources: Sequence[uuid.UUID],
    memories: Sequence[uuid.UUID],
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Which of these source and memory ids the cube holds already."""
    have_sources: set[uuid.UUID] = set()
    have_memories: set[uuid.UUID] = set()
    if sources:
        have_sources = set(
            await session.scalars(
                select(Source.id).where(Source.cube_id == cube_id, Source.id.in_(list(sources)))
            )
        )
    if memories:
        have_memories = set(
            await session.scalars(
                select(Memory.id).where(Memory.cube_id == cube_id, Memory.id.in_(list(memories)))
            )
        )
    return have_sources, have_memories


async def write(
    session: AsyncSession, *, cube_id: uuid.UUID, batch: ImportBatch
) -> tuple[TransferCounts, TransferCounts, set[uuid.UUID]]:
    """Insert what is not there yet: (created, skipped) counts and the new memories' ids.

    Rows already present are left out before inserting (a resumed import re-sends whole
    chunks; a memory present has its versions and source links too, written with it in
    one transaction); ``ON CONFLICT DO NOTHING`` still covers a concurrent import."""
    have_sources = await present(session, Source, [r["id"] for r in batch.sources])
    have_memories = await present(session, Memory, [r["id"] for r in batch.memories])
    have_links = await present(session, Link, [r["id"] for r in batch.links])
    todo = ImportBatch(
        sources=[r for r in batch.sources if r["id"] not in have_sources],
        memories=[r for r in batch.memories if r["id"] not in have_memories],
        versions=[r for r in batch.versions if r["memory_id"] not in have_memories],
        memory_sources=[r for r in batch.memory_sources if r["memory_id"] not in have_memories],
        links=[r for r in batch.links if r["id"] not in have_links],
    )
    created = TransferCounts()
    created.sources = len(await _insert(session, Source, todo.sources, "id"))
    new_memories = set(await _insert(session, Memory, todo.memories, "id"))
    created.memories = len(new_memories)
    if new_memories:
        caches_of(session).touch_cube(cube_id)
    created.versions = len(await _insert(session, MemoryVersion, todo.versions, "id"))
    await _insert(session, MemorySource, todo.memory_sources, None)
    created.links = len(await _insert(session, Link, todo.links, "id"))
    skipped = TransferCounts(
        sources=len(batch.sources) - created.sources,
        memories=len(batch.memories) - created.memories,
        versions=len(batch.versions) - created.versions,
        links=len(batch.links) - created.links,
    )
    return created, skipped, new_memories


async def present(session: AsyncSession, model: type[Any], ids: list[uuid.UUID]) -> set[Any]:
    """Which of ``ids`` the table holds (the tenant's rows only, under row-level security)."""
    if not ids:
        return set()
    return set(await session.scalars(select(model.id).where(model.id.in_(ids))))


async def _insert(
    session: AsyncSession, model: type[Any], rows: list[dict[str, Any]], key: str | None
) -> list[Any]:
    """Insert rows unless there (any unique key); the ``key`` values of those inserted."""
    if not rows:
        return []
    table = core_table(model)
    params = [_column_names(r) for r in rows]
    # executemany: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues"),
    # RETURNING included, without compiling a statement per batch.
    stmt = insert(table).on_conflict_do_nothing()
    if key is None:
        await session.execute(stmt, params)
        return []
    return list((await session.execute(stmt.returning(table.c[key]), params)).scalars())


def _column_names(row: dict[str, Any]) -> dict[str, Any]:
    if "metadata_" in row:
        row = {**row, "metadata": row["metadata_"]}
        del row["metadata_"]
    return row
