"""Memories: current state (create, list, read, edit, delete/restore); each change appends
a version (``memsvc.store.versions``, which also answers history and provenance)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Row, Select, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import Conflict, NotFound
from memsvc.schemas import (
    MemoryCreate,
    MemoryFilters,
    MemoryPage,
    MemoryRead,
    MemoryUpdate,
    SourceRead,
)
from memsvc.store import context, summaries, versions
from memsvc.store.caches import caches_of
from memsvc.store.filters import apply_filters, the_memory
from memsvc.store.indexing import occurred_at
from memsvc.store.jobs import enqueue_many
from memsvc.store.models import (
    Memory,
    MemorySource,
    MemoryVersion,
    Source,
    core_table,
)
from memsvc.store.pagination import fetch_page


@dataclass
class NewMemory:
    """A validated create request with what the write path derived for it."""

    data: MemoryCreate
    index_text: str
    embedding: np.ndarray
    # When it was learned; default: the batch's time plus its position in the batch.
    created_at: datetime | None = None
    # Ids for ``data.sources`` that are stored already (``ingest`` stores every message as
    # a source before its policy decides): linked, not inserted again.
    source_ids: Sequence[uuid.UUID] | None = None


def to_read(mem: Memory, sources: Sequence[SourceRead] = ()) -> MemoryRead:
    """The wire form of a memory row."""
    return MemoryRead.model_validate(mem).model_copy(update={"sources": list(sources)})


# The wire form's fields that are columns of the same name (``metadata`` is ``metadata_``;
# ``sources`` come from their own table).
_COLUMNS = frozenset(Memory.__table__.columns.keys()) - {"metadata"}


@functools.cache
def _rows_with_sources() -> Select[Any]:
    """Memories by id as their wire form's columns (and their index text), with their
    sources as one column: no ORM object, the same statement for every search, built once
    (building the correlated aggregate was a tenth of a search's Python)."""
    columns = [getattr(Memory, name) for name in MemoryRead.model_fields if name in _COLUMNS]
    return select(
        *columns,
        Memory.metadata_.label("metadata"),
        Memory.index_text,
        versions.sources_json(Memory.id).label("sources"),
    ).where(Memory.id.in_(bindparam("ids", expanding=True)))


async def rows_with_sources(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Row[Any]]:
    """The rows of ``ids`` (those that exist) with their sources, in one statement (a
    search's results: ``read_many`` takes a second): each row has the columns of
    ``MemoryRead``, ``sources`` and ``index_text``; ``read_of_row`` makes it a read."""
    if not ids:
        return {}
    rows = await session.execute(_rows_with_sources(), {"ids": list(ids)})
    return {row.id: row for row in rows}


def read_of_row(row: Row[Any]) -> MemoryRead:
    """The wire form of a ``rows_with_sources`` row."""
    return MemoryRead.model_validate(row._mapping)


async def read_many(session: AsyncSession, rows: Sequence[Memory]) -> list[MemoryRead]:
    """Wire forms of rows, with their sources, in the given order."""
    srcs = await versions.sources_of(session, [m.id for m in rows])
    return [to_read(m, srcs.get(m.id, [])) for m in rows]


async def create_many(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    items: Sequence[NewMemory],
    change: versions.Change,
    embedding_model: str,
    enqueue_enrichment: bool = True,
    max_attempts: int = 5,
    ann: bool = False,
) -> list[MemoryRead]:
    """Insert memories, version 1, sources, provenance and enrichment jobs in one transaction.

    ``ann``: the cube is promoted, so the memories go into the HNSW index at once.
    """
    now = datetime.now(UTC)
    mem_rows: list[dict[str, Any]] = []
    ver_rows: list[dict[str, Any]] = []
    src_rows: list[dict[str, Any]] = []
    link_rows: list[dict[str, Any]] = []
    reads: list[MemoryRead] = []
    for i, item in enumerate(items):
        d = item.data
        mid = uuid.uuid4()
        # Distinct timestamps keep list order equal to insertion order within a batch.
        at = item.created_at or now + timedelta(microseconds=i)
        row: dict[str, Any] = {
            **d.model_dump(exclude={"sources", "metadata"}),
            "id": mid,
            "tenant_id": tenant_id,
            "cube_id": cube_id,
            "index_text": item.index_text,
            "keywords": [],
            "context": None,
            "metadata_": d.metadata,
            "status": "active",
            "enrichment_status": "pending" if enqueue_enrichment else "skipped",
            "occurred_at": occurred_at(d.sources) or d.valid_from,
            "version": 1,
            "embedding": item.embedding,
            "ann": ann,
            "created_at": at,
            "updated_at": at,
        }
        mem_rows.append(row)
        ver_rows.append(
            versions.version_row(
                row,
                change,
                embedding_model=embedding_model,
                embedding_hash=versions.embedding_hash(item.embedding),
                created_at=at,
            )
        )
        sources: list[SourceRead] = []
        stored = item.source_ids
        for j, s in enumerate(d.sources):
            sid = uuid.uuid4() if stored is None else stored[j]
            src_row = {
                **s.model_dump(exclude={"metadata"}),
                "id": sid,
                "tenant_id": tenant_id,
                "cube_id": cube_id,
                "metadata_": s.metadata,
            }
            if stored is None:
                src_rows.append(src_row)
            link_rows.append(
                {"memory_id": mid, "version": 1, "source_id": sid, "tenant_id": tenant_id}
            )
            sources.append(SourceRead.model_validate(src_row))
        reads.append(MemoryRead.model_validate({**row, "sources": sources}))
    # Core inserts (column names as keys): the ORM's bulk path cost ~0.1 ms a row more
    # (bench/load.py ingest).
    await session.execute(insert(core_table(Memory)), _columns(mem_rows))
    caches_of(session).touch_cube(cube_id)
    await session.execute(insert(core_table(MemoryVersion)), _columns(ver_rows))
    if src_rows:
        await session.execute(insert(core_table(Source)), _columns(src_rows))
    if link_rows:
        await session.execute(insert(core_table(MemorySource)), link_rows)
    if enqueue_enrichment:
        await enqueue_many(
            session,
            kind="enrich",
            payloads=[{"memory_id": str(r["id"])} for r in mem_rows],
            tenant_id=tenant_id,
            max_attempts=max_attempts,
        )
    await _resummarise(session, tenant_id, cube_id, [_thread(r) for r in mem_rows])
    return reads


def _thread(row: Memory | dict[str, Any]) -> context.Thread | None:
    """The thread a memory (an ORM row or the values inserted) is summarised in; None for a
    summary: summaries never queue summarising."""
    return (
        summaries.thread_of_values(row) if isinstance(row, dict) else summaries.thread_of_row(row)
    )


async def _resummarise(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    threads: Sequence[context.Thread | None],
) -> None:
    """Queue (debounced) summarising of the threads written to, unless only summaries were."""
    if any(t is not None for t in threads):
        await summaries.schedule(session, tenant_id=tenant_id, cube_id=cube_id, threads=threads)


def _columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ORM attribute names to column names (``metadata_`` is the ``metadata`` column)."""
    for row in rows:
        if "metadata_" in row:
            row["metadata"] = row.pop("metadata_")
    return rows


async def load(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    for_update: bool = False,
) -> Memory:
    """The memory row of the tenant; erased or foreign memories are 404."""
    stmt = select(Memory).where(*the_memory(tenant_id, memory_id))
    if for_update:
        stmt = stmt.with_for_update()
    mem = (await session.execute(stmt)).scalar_one_or_none()
    if mem is None:
        raise NotFound("memory not found")
    return mem


@dataclass(frozen=True)
class Head:
    """What a view shows of a memory it only points at (erased ones included)."""

    cube_id: uuid.UUID
    content: str
    status: str


async def heads(
    session: AsyncSession, *, tenant_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Head]:
    """Cube, content and status of those of ``ids`` that are the tenant's memories."""
    if not ids:
        return {}
    rows = await session.execute(
        select(Memory.id, Memory.cube_id, Memory.content, Memory.status).where(
            Memory.tenant_id == tenant_id, Memory.id.in_(ids)
        )
    )
    return {mid: Head(cube_id=cid, content=text, status=st) for mid, cid, text, st in rows}


async def get(session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> MemoryRead:
    """One memory with its sources."""
    mem = await load(session, tenant_id=tenant_id, memory_id=memory_id)
    return (await read_many(session, [mem]))[0]


async def get_all(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    filters: MemoryFilters,
    cursor: str | None,
    limit: int,
) -> MemoryPage:
    """A page of the cube's memories, oldest first."""
    stmt = select(Memory).where(Memory.tenant_id == tenant_id, Memory.cube_id == cube_id)
    page, nxt = await fetch_page(
        session,
        apply_filters(stmt, filters),
        Memory.created_at,
        Memory.id,
        cursor=cursor,
        limit=limit,
    )
    return MemoryPage(items=await read_many(session, page), next_cursor=nxt)


async def update_memory(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    data: MemoryUpdate,
    change: versions.Change,
    version: int,
    rebased_over: Sequence[int] = (),
    index_text: str | None = None,
    embedding: np.ndarray | None = None,
    embedding_model: str | None = None,
) -> MemoryRead:
    """Apply an edit as version ``version + 1``; ``version`` is locked by ``edits.begin``."""
    values: dict[str, Any] = data.model_dump(
        exclude_unset=True, exclude={"expected_version", "reason"}
    )
    if "metadata" in values:
        values["metadata_"] = values.pop("metadata")
    if index_text is not None:
        values["index_text"] = index_text
    if embedding is not None:
        values["embedding"] = embedding
    stmt = (
        update(Memory)
        .where(
            Memory.id == memory_id,
            Memory.tenant_id == tenant_id,
            Memory.status != "erased",
            Memory.version == version,
        )
        .values(**values, version=Memory.version + 1, updated_at=func.now())
        .returning(Memory)
        .execution_options(synchronize_session=False)
    )
    before = None
    if values.keys() & {"session_id", "user_id", "agent_id"}:
        before = (
            await session.execute(
                select(Memory.kind, Memory.session_id, Memory.user_id, Memory.agent_id).where(
                    Memory.id == memory_id, Memory.tenant_id == tenant_id
                )
            )
        ).first()
    mem = (await session.execute(stmt)).scalar_one_or_none()
    if mem is None:  # only when called without the lock of ``edits.begin``
        current = await load(session, tenant_id=tenant_id, memory_id=memory_id)
        raise Conflict(
            f"memory is at version {current.version}, not {version}",
            code="version_conflict",
            detail={"expected_version": version, "current_version": current.version},
        )
    extra: dict[str, Any] = {"rebased_over": list(rebased_over) or None}
    if embedding is not None:
        extra |= {
            "embedding_model": embedding_model,
            "embedding_hash": versions.embedding_hash(embedding),
        }
    await versions.append(session, mem, change, **extra)
    threads = [_thread(mem)]
    if before is not None:
        threads.append(_thread({**before._asdict(), "occurred_at": mem.occurred_at}))
    await _resummarise(session, tenant_id, mem.cube_id, threads)
    return (await read_many(session, [mem]))[0]


async def set_status(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    status: str,
    change: versions.Change,
) -> MemoryRead:
    """Soft delete or restore, as a new version (a no-op when already in that status)."""
    mem = await load(session, tenant_id=tenant_id, memory_id=memory_id, for_update=True)
    if mem.status != status:
        mem.status = status
        caches_of(session).touch_cube(mem.cube_id)
        mem.version += 1
        mem.updated_at = datetime.now(UTC)
        await session.flush()
        await versions.append(session, mem, change)
        await _resummarise(session, tenant_id, mem.cube_id, [_thread(mem)])
    return (await read_many(session, [mem]))[0]
