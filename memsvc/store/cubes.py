"""Cubes: memory containers, always scoped by tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import Conflict, NotFound
from memsvc.schemas import CubeCreate, CubePage, CubeRead, CubeUpdate
from memsvc.store.models import Cube, Memory
from memsvc.store.pagination import fetch_page


def _read(cube: Cube, count: int) -> CubeRead:
    return CubeRead(
        id=cube.id,
        name=cube.name,
        description=cube.description,
        metadata=cube.metadata_,
        memory_count=count,
        write_policy=cube.write_policy,
        created_at=cube.created_at,
        updated_at=cube.updated_at,
    )


async def _counts(session: AsyncSession, cube_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not cube_ids:
        return {}
    rows = await session.execute(
        select(Memory.cube_id, func.count())
        .where(Memory.cube_id.in_(cube_ids), Memory.status == "active")
        .group_by(Memory.cube_id)
    )
    return {cid: n for cid, n in rows}


async def _load(session: AsyncSession, tenant_id: uuid.UUID, cube_id: uuid.UUID) -> Cube:
    cube = (
        await session.execute(
            select(Cube).where(
                Cube.id == cube_id, Cube.tenant_id == tenant_id, Cube.deleted_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if cube is None:
        raise NotFound("cube not found")
    return cube


async def create(session: AsyncSession, *, tenant_id: uuid.UUID, data: CubeCreate) -> CubeRead:
    """A new cube; names are unique within a tenant (409)."""
    cube = Cube(
        tenant_id=tenant_id,
        name=data.name,
        description=data.description,
        metadata_=data.metadata,
        write_policy=data.write_policy,
    )
    session.add(cube)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"cube {data.name!r} exists", code="cube_exists") from exc
    await session.refresh(cube)
    return _read(cube, 0)


@dataclass(frozen=True)
class CubeRef:
    """A cube the caller may use, checked without counting its memories (hot paths)."""

    id: uuid.UUID
    name: str
    # Its memories go into the HNSW index as they are written (``memsvc.store.ann``).
    ann_indexed: bool = False
    # Its default write policy (``ingest``); None: the service's.
    write_policy: str | None = None
    # The database's count of changes to its vectors (``Cube.vector_gen``).
    vector_gen: int | None = None


# ``require``'s statements, built once: one runs before every write and search.
_WHERE = (
    Cube.id == bindparam("cube_id"),
    Cube.tenant_id == bindparam("tenant_id"),
    Cube.deleted_at.is_(None),
)
_REF = select(Cube.id, Cube.name, Cube.ann_indexed, Cube.write_policy).where(*_WHERE)
_REF_GEN = _REF.add_columns(Cube.vector_gen)


async def require(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, vector_gen: bool = False
) -> CubeRef:
    """The caller's live cube or 404 — cheap enough for every write and search (four
    columns, no ORM object); with ``vector_gen`` its vectors' generation too (a search's
    kept vectors: ``memsvc.store.vector_cache``)."""
    stmt = _REF_GEN if vector_gen else _REF
    row = (await session.execute(stmt, {"cube_id": cube_id, "tenant_id": tenant_id})).first()
    if row is None:
        raise NotFound("cube not found")
    return CubeRef(
        id=row.id,
        name=row.name,
        ann_indexed=row.ann_indexed,
        write_policy=row.write_policy,
        vector_gen=row.vector_gen if vector_gen else None,
    )


async def get(session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID) -> CubeRead:
    """One live cube of the tenant (404 for absent, deleted or another tenant's)."""
    cube = await _load(session, tenant_id, cube_id)
    return _read(cube, (await _counts(session, [cube.id])).get(cube.id, 0))


async def get_all(
    session: AsyncSession, *, tenant_id: uuid.UUID, cursor: str | None, limit: int
) -> CubePage:
    """The tenant's live cubes, oldest first, with memory counts."""
    stmt = select(Cube).where(Cube.tenant_id == tenant_id, Cube.deleted_at.is_(None))
    page, nxt = await fetch_page(
        session, stmt, Cube.created_at, Cube.id, cursor=cursor, limit=limit
    )
    counts = await _counts(session, [c.id for c in page])
    return CubePage(items=[_read(c, counts.get(c.id, 0)) for c in page], next_cursor=nxt)


async def update(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, data: CubeUpdate
) -> CubeRead:
    """Rename or re-describe a cube."""
    cube = await _load(session, tenant_id, cube_id)
    if data.name is not None:
        cube.name = data.name
    if data.description is not None:
        cube.description = data.description
    if data.metadata is not None:
        cube.metadata_ = data.metadata
    if "write_policy" in data.model_fields_set:
        cube.write_policy = data.write_policy
    cube.updated_at = func.now()
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"cube {data.name!r} exists", code="cube_exists") from exc
    await session.refresh(cube)
    return await get(session, tenant_id=tenant_id, cube_id=cube_id)


async def delete(session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID) -> None:
    """Retire a cube: it disappears from the API; its rows stay for audit and export."""
    cube = await _load(session, tenant_id, cube_id)
    cube.deleted_at = func.now()
    await session.flush()
