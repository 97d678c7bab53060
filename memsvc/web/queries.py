"""Read models the admin view needs beyond the API's: jobs with their memory and cube, links
with their other end. They combine what ``store/`` answers; the numbers are ``store.stats``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.jobs import queue
from memsvc.schemas import JobRead
from memsvc.store import links as link_store
from memsvc.store import memories
from memsvc.store.pagination import every


@dataclass(frozen=True)
class JobView:
    """A job as the jobs page lists it: the queue's row plus the memory and cube it touches."""

    job: JobRead
    memory_id: uuid.UUID | None
    cube_id: uuid.UUID | None


@dataclass(frozen=True)
class JobViewPage:
    items: list[JobView]
    next_cursor: str | None


def _payload_memory(job: JobRead) -> uuid.UUID | None:
    raw = job.payload.get("memory_id")
    try:
        return uuid.UUID(str(raw)) if raw is not None else None
    except ValueError:
        return None


async def jobs(
    session: AsyncSession, *, tenant_id: uuid.UUID, status: str, cursor: str | None, limit: int
) -> JobViewPage:
    """A page of the tenant's jobs in ``status`` (the queue's order), with memory and cube."""
    page = await queue.get_all(
        session, tenant_id=tenant_id, status=status, cursor=cursor, limit=limit
    )
    mids = {m for m in (_payload_memory(j) for j in page.items) if m is not None}
    found = await memories.heads(session, tenant_id=tenant_id, ids=mids)
    cube_of = {mid: head.cube_id for mid, head in found.items()}
    items = []
    for j in page.items:
        mid = _payload_memory(j)
        items.append(
            JobView(job=j, memory_id=mid, cube_id=cube_of.get(mid) if mid is not None else None)
        )
    return JobViewPage(items=items, next_cursor=page.next_cursor)


# --- links -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkView:
    """One edge seen from a memory: the other end, the relation and its provenance."""

    id: uuid.UUID
    direction: str  # "out" (this memory is the source) or "in"
    relation: str
    weight: float
    reason: str | None
    created_by: str
    created_at: datetime
    other_id: uuid.UUID
    other_content: str
    other_status: str


# What a link view shows of the link itself.
_SHOWN = {"id", "relation", "weight", "reason", "created_by", "created_at"}


async def links_of(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID
) -> list[LinkView]:
    """Live links from and to a memory (the API's ``/links``), strongest first, with the
    other end's content."""
    found = await every(
        lambda cursor: link_store.for_memory(
            session, tenant_id=tenant_id, memory_id=memory_id, cursor=cursor, limit=1000
        )
    )
    others = {link.target_id if link.source_id == memory_id else link.source_id for link in found}
    ends = await memories.heads(session, tenant_id=tenant_id, ids=others)
    out = []
    for link in found:
        outgoing = link.source_id == memory_id
        other = link.target_id if outgoing else link.source_id
        end = ends.get(other)
        out.append(
            LinkView(
                **link.model_dump(include=_SHOWN),
                direction="out" if outgoing else "in",
                other_id=other,
                other_content=end.content if end else "",
                other_status=end.status if end else "erased",
            )
        )
    return sorted(out, key=lambda v: (-v.weight, v.relation, str(v.other_id)))


async def memory_ids_exist(
    session: AsyncSession, *, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of ``ids`` are the tenant's (not erased) memories: only those get links."""
    found = await memories.heads(session, tenant_id=tenant_id, ids=set(ids))
    return {mid for mid, head in found.items() if head.status != "erased"}
