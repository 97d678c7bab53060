"""Links: typed, weighted edges between memories of one cube, with provenance.

A live edge is unique per ``(source_id, target_id, relation)`` (partial unique index on
``status = 'active'``); inserts use ``ON CONFLICT DO NOTHING`` on it, so re-running the
job that made an edge never duplicates it. Symmetric relations (``related``,
``same_entity``, ``contradicts``) made by the system are stored with the smaller id as
source, so two jobs linking the same pair from either end still meet on that index.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import BadRequest, Conflict, NotFound
from memsvc.schemas import SYMMETRIC_RELATIONS, LinkCreate, LinkPage, LinkRead
from memsvc.store import memories
from memsvc.store.models import Link, Memory
from memsvc.store.pagination import fetch_page

_LIVE_EDGE = ["source_id", "target_id", "relation"]
# A literal, not a bound parameter: Postgres infers the partial unique index from it, and a
# parameter (as in a server-side prepared statement) would not match the index predicate.
_LIVE_WHERE = text("status = 'active'")


@dataclass
class NewLink:
    """An edge the system (or a caller) wants to exist."""

    source_id: uuid.UUID
    target_id: uuid.UUID
    relation: str
    weight: float
    reason: str | None
    created_by: str
    provenance: dict[str, Any] = field(default_factory=dict)


def to_read(link: Link) -> LinkRead:
    """The link JSON of a row."""
    return LinkRead.model_validate(link)


def canonical(
    source_id: uuid.UUID, target_id: uuid.UUID, relation: str
) -> tuple[uuid.UUID, uuid.UUID]:
    """Direction a system-made edge is stored in: symmetric relations smaller id first."""
    if relation in SYMMETRIC_RELATIONS and str(target_id) < str(source_id):
        return target_id, source_id
    return source_id, target_id


async def insert_many(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, links: Sequence[NewLink]
) -> list[uuid.UUID]:
    """Insert edges that are not live yet; returns the ids of those actually inserted."""
    rows = []
    seen: set[tuple[uuid.UUID, uuid.UUID, str]] = set()
    for ln in links:
        src, dst = canonical(ln.source_id, ln.target_id, ln.relation)
        key = (src, dst, ln.relation)
        if src == dst or key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "cube_id": cube_id,
                "source_id": src,
                "target_id": dst,
                "relation": ln.relation,
                "weight": ln.weight,
                "reason": ln.reason,
                "created_by": ln.created_by,
                "status": "active",
                "provenance": ln.provenance,
            }
        )
    if not rows:
        return []
    stmt = (
        pg_insert(Link)
        .values(rows)
        .on_conflict_do_nothing(index_elements=_LIVE_EDGE, index_where=_LIVE_WHERE)
        .returning(Link.id)
    )
    return list((await session.execute(stmt)).scalars())


async def create(
    session: AsyncSession, *, tenant_id: uuid.UUID, data: LinkCreate, actor: str
) -> LinkRead:
    """A manual link between two of the tenant's memories in one cube (409 if already live)."""
    if data.source_id == data.target_id:
        raise BadRequest("a memory cannot link to itself", code="self_link")
    src = await memories.load(session, tenant_id=tenant_id, memory_id=data.source_id)
    dst = await memories.load(session, tenant_id=tenant_id, memory_id=data.target_id)
    if src.cube_id != dst.cube_id:
        raise BadRequest(
            "both memories must be in the same cube",
            code="cross_cube_link",
            detail={"source_cube_id": str(src.cube_id), "target_cube_id": str(dst.cube_id)},
        )
    pair = [(data.source_id, data.target_id)]
    if data.relation in SYMMETRIC_RELATIONS:
        pair.append((data.target_id, data.source_id))
    existing = (
        await session.execute(
            select(Link.id).where(
                Link.status == "active",
                Link.relation == data.relation,
                or_(*(and_(Link.source_id == s, Link.target_id == t) for s, t in pair)),
            )
        )
    ).scalar()
    conflict = Conflict(
        f"a live {data.relation!r} link between these memories exists",
        code="link_exists",
        detail={"link_id": str(existing) if existing else None},
    )
    if existing is not None:
        raise conflict
    stmt = (
        pg_insert(Link)
        .values(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            cube_id=src.cube_id,
            source_id=data.source_id,
            target_id=data.target_id,
            relation=data.relation,
            weight=data.weight,
            reason=data.reason,
            created_by=actor,
            status="active",
            provenance={"manual": True},
        )
        .on_conflict_do_nothing(index_elements=_LIVE_EDGE, index_where=_LIVE_WHERE)
        .returning(Link)
    )
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:  # lost a race with a concurrent insert of the same edge
        raise conflict
    return to_read(row)


async def delete(session: AsyncSession, *, tenant_id: uuid.UUID, link_id: uuid.UUID) -> None:
    """Retire a live link (status ``deleted``; the row stays for history)."""
    res = await session.execute(
        update(Link)
        .where(Link.id == link_id, Link.tenant_id == tenant_id, Link.status == "active")
        .values(status="deleted")
    )
    if res.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("link not found")


def _live_between_visible() -> Any:
    """Live links whose both ends are still readable (not erased)."""
    erased = select(Memory.id).where(Memory.status == "erased")
    return and_(
        Link.status == "active", Link.source_id.not_in(erased), Link.target_id.not_in(erased)
    )


async def for_memory(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> LinkPage:
    """Live links of a memory in both directions, oldest first."""
    await memories.load(session, tenant_id=tenant_id, memory_id=memory_id)
    stmt = select(Link).where(
        Link.tenant_id == tenant_id,
        or_(Link.source_id == memory_id, Link.target_id == memory_id),
        _live_between_visible(),
    )
    page, nxt = await fetch_page(
        session, stmt, Link.created_at, Link.id, cursor=cursor, limit=limit
    )
    return LinkPage(items=[to_read(r) for r in page], next_cursor=nxt)


async def neighbours(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_ids: Sequence[uuid.UUID]
) -> list[LinkRead]:
    """Live links touching any of ``memory_ids`` (either direction)."""
    if not memory_ids:
        return []
    rows = await session.execute(
        select(Link)
        .where(
            Link.tenant_id == tenant_id,
            Link.status == "active",
            or_(Link.source_id.in_(memory_ids), Link.target_id.in_(memory_ids)),
        )
        .order_by(Link.created_at, Link.id)
    )
    return [to_read(r) for r in rows.scalars()]


async def of_cube(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, max_edges: int
) -> list[LinkRead]:
    """Live links between active memories of a cube, oldest first (at most ``max_edges``)."""
    active = select(Memory.id).where(Memory.cube_id == cube_id, Memory.status == "active")
    rows = await session.execute(
        select(Link)
        .where(
            Link.tenant_id == tenant_id,
            Link.cube_id == cube_id,
            Link.status == "active",
            Link.source_id.in_(active),
            Link.target_id.in_(active),
        )
        .order_by(Link.created_at, Link.id)
        .limit(max_edges)
    )
    return [to_read(r) for r in rows.scalars()]


async def count_live(session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID) -> int:
    """Number of live links in a cube."""
    n = await session.execute(
        select(func.count()).where(
            Link.tenant_id == tenant_id, Link.cube_id == cube_id, Link.status == "active"
        )
    )
    return int(n.scalar_one())


async def relations(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID
) -> list[str]:
    """The relation names of the cube's live links, sorted."""
    rows = await session.execute(
        select(Link.relation)
        .where(Link.tenant_id == tenant_id, Link.cube_id == cube_id, Link.status == "active")
        .distinct()
        .order_by(Link.relation)
    )
    return list(rows.scalars())


@dataclass
class GraphMemory:
    """What a graph view shows of a memory."""

    id: uuid.UUID
    content: str
    kind: str
    layer: str
    tags: list[str]
    created_at: Any


def _graph_memory(m: Memory) -> GraphMemory:
    return GraphMemory(
        id=m.id,
        content=m.content,
        kind=m.kind,
        layer=m.layer,
        tags=list(m.tags or []),
        created_at=m.created_at,
    )


async def graph_memories(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    ids: Sequence[uuid.UUID] | None = None,
    limit: int | None = None,
) -> list[GraphMemory]:
    """Active memories of the cube: the given ones, or the newest ``limit``."""
    stmt = select(Memory).where(
        Memory.tenant_id == tenant_id, Memory.cube_id == cube_id, Memory.status == "active"
    )
    if ids is not None:
        stmt = stmt.where(Memory.id.in_(ids))
    stmt = stmt.order_by(Memory.created_at.desc(), Memory.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_graph_memory(m) for m in (await session.execute(stmt)).scalars()]


async def count_active(session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID) -> int:
    """Number of active memories in a cube."""
    n = await session.execute(
        select(func.count()).where(
            Memory.tenant_id == tenant_id, Memory.cube_id == cube_id, Memory.status == "active"
        )
    )
    return int(n.scalar_one())
