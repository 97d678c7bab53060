"""Memories: current state, append-only versions, sources and provenance."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import Conflict, NotFound
from memsvc.schemas import (
    MemoryCreate,
    MemoryPage,
    MemoryRead,
    MemoryUpdate,
    MemoryVersionPage,
    MemoryVersionRead,
    ProvenanceRead,
    SourceRead,
    VersionProvenance,
)
from memsvc.store.caches import caches_of
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
class NewMemory:
    """A validated create request with what the write path derived for it."""

    data: MemoryCreate
    index_text: str
    embedding: np.ndarray
    # When it was learned; default: the batch's time plus its position in the batch.
    created_at: datetime | None = None


@dataclass
class Change:
    """Who made a change and why: recorded on the version it creates."""

    actor: str
    change_kind: str
    reason: str | None = None
    caused_by: uuid.UUID | None = None
    policy: str | None = None
    model: str | None = None


@dataclass
class MemoryFilters:
    """List filters; ``None`` means no restriction."""

    status: str | None = None
    kind: str | None = None
    layer: str | None = None
    tags: list[str] = field(default_factory=list)
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_deleted: bool = False


def embedding_hash(vec: np.ndarray) -> str:
    """A short stable fingerprint of an embedding, kept on each version."""
    return hashlib.sha256(np.asarray(vec, dtype=np.float32).tobytes()).hexdigest()[:32]


def _snapshot(mem: Memory, change: Change, version: int, **extra: Any) -> dict[str, Any]:
    row = {name: getattr(mem, name) for name in SNAPSHOT}
    row.update(
        tenant_id=mem.tenant_id,
        memory_id=mem.id,
        version=version,
        metadata_=mem.metadata_,
        change_kind=change.change_kind,
        actor=change.actor,
        reason=change.reason,
        caused_by=change.caused_by,
        policy=change.policy,
        model=change.model,
    )
    row.update(extra)
    return row


def _source_read(s: Source) -> SourceRead:
    return SourceRead(
        id=s.id,
        kind=s.kind,
        external_id=s.external_id,
        speaker=s.speaker,
        occurred_at=s.occurred_at,
        text=s.text,
        metadata=s.metadata_,
    )


def to_read(mem: Memory, sources: Sequence[SourceRead] = ()) -> MemoryRead:
    """The wire form of a memory row."""
    return MemoryRead(
        id=mem.id,
        cube_id=mem.cube_id,
        content=mem.content,
        kind=mem.kind,
        layer=mem.layer,
        tags=list(mem.tags or []),
        metadata=mem.metadata_ or {},
        user_id=mem.user_id,
        agent_id=mem.agent_id,
        session_id=mem.session_id,
        importance=mem.importance,
        status=mem.status,
        valid_from=mem.valid_from,
        valid_to=mem.valid_to,
        created_at=mem.created_at,
        updated_at=mem.updated_at,
        version=mem.version,
        keywords=list(mem.keywords or []),
        context=mem.context,
        enrichment_status=mem.enrichment_status,
        sources=list(sources),
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
        out[mid].append(_source_read(src))
    return out


async def read_many(session: AsyncSession, rows: Sequence[Memory]) -> list[MemoryRead]:
    """Wire forms of rows, with their sources, in the given order."""
    srcs = await sources_of(session, [m.id for m in rows])
    return [to_read(m, srcs.get(m.id, [])) for m in rows]


async def create_many(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    items: Sequence[NewMemory],
    change: Change,
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
            "id": mid,
            "tenant_id": tenant_id,
            "cube_id": cube_id,
            "content": d.content,
            "index_text": item.index_text,
            "kind": d.kind,
            "layer": d.layer,
            "tags": d.tags,
            "keywords": [],
            "context": None,
            "metadata_": d.metadata,
            "user_id": d.user_id,
            "agent_id": d.agent_id,
            "session_id": d.session_id,
            "importance": d.importance,
            "status": "active",
            "enrichment_status": "pending" if enqueue_enrichment else "skipped",
            "valid_from": d.valid_from,
            "valid_to": d.valid_to,
            "occurred_at": occurred_at(d.sources) or d.valid_from,
            "version": 1,
            "embedding": item.embedding,
            "ann": ann,
            "created_at": at,
            "updated_at": at,
        }
        mem_rows.append(row)
        snap = {k: row[k] for k in SNAPSHOT}
        ver_rows.append(
            {
                **snap,
                "tenant_id": tenant_id,
                "memory_id": mid,
                "version": 1,
                "metadata_": d.metadata,
                "change_kind": change.change_kind,
                "actor": change.actor,
                "reason": change.reason,
                "caused_by": change.caused_by,
                "policy": change.policy,
                "model": change.model,
                "embedding_model": embedding_model,
                "embedding_hash": embedding_hash(item.embedding),
                "created_at": at,
            }
        )
        sources: list[SourceRead] = []
        for s in d.sources:
            sid = uuid.uuid4()
            src_rows.append(
                {
                    "id": sid,
                    "tenant_id": tenant_id,
                    "cube_id": cube_id,
                    "kind": s.kind,
                    "external_id": s.external_id,
                    "speaker": s.speaker,
                    "occurred_at": s.occurred_at,
                    "text": s.text,
                    "metadata_": s.metadata,
                }
            )
            link_rows.append(
                {"memory_id": mid, "version": 1, "source_id": sid, "tenant_id": tenant_id}
            )
            sources.append(SourceRead(id=sid, **s.model_dump()))
        reads.append(
            MemoryRead(
                id=mid,
                cube_id=cube_id,
                content=d.content,
                kind=d.kind,
                layer=d.layer,
                tags=d.tags,
                metadata=d.metadata,
                user_id=d.user_id,
                agent_id=d.agent_id,
                session_id=d.session_id,
                importance=d.importance,
                status="active",
                valid_from=d.valid_from,
                valid_to=d.valid_to,
                created_at=at,
                updated_at=at,
                version=1,
                enrichment_status=row["enrichment_status"],
                sources=sources,
            )
        )
    # Core inserts (column names as keys): the ORM's bulk path cost ~0.1 ms a row more
    # (bench/load.py ingest).
    await session.execute(insert(core_table(Memory)), _columns(mem_rows))
    caches_of(session).touch_cube(cube_id)
    await session.execute(insert(core_table(MemoryVersion)), _columns(ver_rows))
    if src_rows:
        await session.execute(insert(core_table(Source)), _columns(src_rows))
        await session.execute(insert(core_table(MemorySource)), link_rows)
    if enqueue_enrichment:
        await enqueue_many(
            session,
            kind="enrich",
            payloads=[{"memory_id": str(r["id"])} for r in mem_rows],
            tenant_id=tenant_id,
            max_attempts=max_attempts,
        )
    return reads


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
    stmt = select(Memory).where(
        Memory.id == memory_id, Memory.tenant_id == tenant_id, Memory.status != "erased"
    )
    if for_update:
        stmt = stmt.with_for_update()
    mem = (await session.execute(stmt)).scalar_one_or_none()
    if mem is None:
        raise NotFound("memory not found")
    return mem


async def get(session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> MemoryRead:
    """One memory with its sources."""
    mem = await load(session, tenant_id=tenant_id, memory_id=memory_id)
    return (await read_many(session, [mem]))[0]


def _filtered(stmt: Select[Any], f: MemoryFilters) -> Select[Any]:
    if f.status:
        stmt = stmt.where(Memory.status == f.status)
    elif not f.include_deleted:
        stmt = stmt.where(Memory.status == "active")
    else:
        stmt = stmt.where(Memory.status != "erased")
    for col, val in (
        (Memory.kind, f.kind),
        (Memory.layer, f.layer),
        (Memory.user_id, f.user_id),
        (Memory.agent_id, f.agent_id),
        (Memory.session_id, f.session_id),
    ):
        if val is not None:
            stmt = stmt.where(col == val)
    if f.tags:
        stmt = stmt.where(Memory.tags.overlap(f.tags))
    if f.created_after:
        stmt = stmt.where(Memory.created_at >= f.created_after)
    if f.created_before:
        stmt = stmt.where(Memory.created_at < f.created_before)
    return stmt


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
        session, _filtered(stmt, filters), Memory.created_at, Memory.id, cursor=cursor, limit=limit
    )
    return MemoryPage(items=await read_many(session, page), next_cursor=nxt)


async def _append_version(session: AsyncSession, mem: Memory, change: Change, **extra: Any) -> None:
    await session.execute(insert(MemoryVersion), [_snapshot(mem, change, mem.version, **extra)])


async def update_memory(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    data: MemoryUpdate,
    change: Change,
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
        extra |= {"embedding_model": embedding_model, "embedding_hash": embedding_hash(embedding)}
    await _append_version(session, mem, change, **extra)
    return (await read_many(session, [mem]))[0]


async def set_status(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    status: str,
    change: Change,
) -> MemoryRead:
    """Soft delete or restore, as a new version (a no-op when already in that status)."""
    mem = await load(session, tenant_id=tenant_id, memory_id=memory_id, for_update=True)
    if mem.status != status:
        mem.status = status
        caches_of(session).touch_cube(mem.cube_id)
        mem.version += 1
        mem.updated_at = datetime.now(UTC)
        await session.flush()
        await _append_version(session, mem, change)
    return (await read_many(session, [mem]))[0]


def _version_read(v: MemoryVersion) -> MemoryVersionRead:
    return MemoryVersionRead(
        memory_id=v.memory_id,
        version=v.version,
        change_kind=v.change_kind,
        content=v.content,
        kind=v.kind,
        layer=v.layer,
        tags=list(v.tags or []),
        metadata=v.metadata_ or {},
        keywords=list(v.keywords or []),
        context=v.context,
        importance=v.importance,
        status=v.status,
        valid_from=v.valid_from,
        valid_to=v.valid_to,
        actor=v.actor,
        reason=v.reason,
        caused_by=v.caused_by,
        policy=v.policy,
        model=v.model,
        embedding_model=v.embedding_model,
        embedding_hash=v.embedding_hash,
        rebased_over=list(v.rebased_over or []),
        imported_from=v.imported_from,
        created_at=v.created_at,
    )


async def versions(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> MemoryVersionPage:
    """The version history, oldest first."""
    await load(session, tenant_id=tenant_id, memory_id=memory_id)
    stmt = select(MemoryVersion).where(
        MemoryVersion.memory_id == memory_id, MemoryVersion.tenant_id == tenant_id
    )
    page, nxt = await fetch_page(
        session, stmt, MemoryVersion.created_at, MemoryVersion.id, cursor=cursor, limit=limit
    )
    return MemoryVersionPage(items=[_version_read(v) for v in page], next_cursor=nxt)


async def version(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID, number: int
) -> MemoryVersionRead:
    """One version of a memory."""
    await load(session, tenant_id=tenant_id, memory_id=memory_id)
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
    return _version_read(v)


async def provenance(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID
) -> ProvenanceRead:
    """For each version: actor, policy/model, causing memory and the sources it came from."""
    await load(session, tenant_id=tenant_id, memory_id=memory_id)
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
        by_version[n].append(_source_read(src))
    return ProvenanceRead(
        memory_id=memory_id,
        versions=[
            VersionProvenance(
                version=v.version,
                change_kind=v.change_kind,
                actor=v.actor,
                reason=v.reason,
                caused_by=v.caused_by,
                policy=v.policy,
                model=v.model,
                rebased_over=list(v.rebased_over or []),
                imported_from=v.imported_from,
                created_at=v.created_at,
                sources=by_version.get(v.version, []),
            )
            for v in vers
        ],
    )
