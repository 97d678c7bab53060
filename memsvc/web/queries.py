"""Read models the admin view needs beyond the API's: cube statistics, jobs, links.

Every query is scoped by tenant. Rows leave as small frozen dataclasses, never ORM objects.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, cast, delete, func, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.jobs import queue
from memsvc.schemas import JobRead, LinkRead
from memsvc.store import links as link_store
from memsvc.store.models import ApiKey, Job, Memory, RevokedSession

JOB_STATUSES = ("queued", "running", "failed", "done")
_UUID_RE = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _job_memory_id() -> Any:
    """The memory a job is about (``payload.memory_id``), NULL when absent or malformed."""
    raw = Job.payload["memory_id"].astext
    return case((raw.op("~")(_UUID_RE), cast(raw, PG_UUID(as_uuid=True))), else_=None)


async def key_is_live(session: AsyncSession, *, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """Whether the key behind a session still exists unrevoked in its tenant."""
    row = await session.execute(
        select(ApiKey.id).where(
            ApiKey.id == key_id, ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None)
        )
    )
    return row.first() is not None


async def session_is_live(
    session: AsyncSession, *, tenant_id: uuid.UUID, key_id: uuid.UUID, session_id: str
) -> bool:
    """Whether a session's key is live and the session was not signed out."""
    revoked = select(RevokedSession.id).where(RevokedSession.id == session_id).exists()
    row = await session.execute(
        select(ApiKey.id).where(
            ApiKey.id == key_id,
            ApiKey.tenant_id == tenant_id,
            ApiKey.revoked_at.is_(None),
            ~revoked,
        )
    )
    return row.first() is not None


async def revoke_session(session: AsyncSession, *, session_id: str, expires: int) -> None:
    """Sign a session out for good (until its cookie would have expired); forget the
    revocations whose cookies have expired since."""
    now = datetime.now(UTC)
    await session.execute(delete(RevokedSession).where(RevokedSession.expires_at < now))
    until = datetime.fromtimestamp(expires, UTC)
    await session.execute(
        insert(RevokedSession)
        .values(id=session_id, expires_at=until)
        .on_conflict_do_nothing(index_elements=[RevokedSession.id])
    )


# --- cubes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


@dataclass(frozen=True)
class Growth:
    """Memories written per UTC day over a window, and how many existed before it."""

    days: list[DayCount]
    before: int

    @property
    def peak(self) -> int:
        return max((d.count for d in self.days), default=0)

    @property
    def total(self) -> int:
        return self.before + sum(d.count for d in self.days)

    def cumulative(self) -> list[int]:
        """Running totals at the end of each day of the window."""
        out, running = [], self.before
        for d in self.days:
            running += d.count
            out.append(running)
        return out


@dataclass
class CubeStats:
    """Per-cube numbers for the overview: memories by status, jobs by status, growth."""

    by_status: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    growth: Growth = field(default_factory=lambda: Growth(days=[], before=0))


def _window(days: int, today: date | None = None) -> list[date]:
    end = today or datetime.now(UTC).date()
    return [end - timedelta(days=days - 1 - i) for i in range(days)]


async def cube_stats(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_ids: Sequence[uuid.UUID], days: int = 30
) -> dict[uuid.UUID, CubeStats]:
    """Memory counts, open job counts and daily growth of each cube."""
    out = {cid: CubeStats() for cid in cube_ids}
    if not cube_ids:
        return out
    mem = Memory.tenant_id == tenant_id, Memory.cube_id.in_(cube_ids)
    rows = await session.execute(
        select(Memory.cube_id, Memory.status, func.count())
        .where(*mem, Memory.status != "erased")
        .group_by(Memory.cube_id, Memory.status)
    )
    for cid, status, n in rows:
        out[cid].by_status[status] = n
    mid = _job_memory_id()
    rows = await session.execute(
        select(Memory.cube_id, Job.status, func.count())
        .join(Memory, Memory.id == mid)
        .where(Job.tenant_id == tenant_id, *mem, Job.status.in_(("queued", "running", "failed")))
        .group_by(Memory.cube_id, Job.status)
    )
    for cid, status, n in rows:
        out[cid].jobs[status] = n
    growth = await growth_by_cube(session, tenant_id=tenant_id, cube_ids=cube_ids, days=days)
    for cid, g in growth.items():
        out[cid].growth = g
    return out


async def growth_by_cube(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_ids: Sequence[uuid.UUID], days: int
) -> dict[uuid.UUID, Growth]:
    """Memories written per UTC day in the last ``days`` days (erased ones included)."""
    window = _window(days)
    start = datetime.combine(window[0], datetime.min.time(), tzinfo=UTC)
    day = func.date_trunc("day", func.timezone("UTC", Memory.created_at))
    scoped = (Memory.tenant_id == tenant_id, Memory.cube_id.in_(cube_ids))
    per_day: dict[uuid.UUID, dict[date, int]] = defaultdict(dict)
    rows = await session.execute(
        select(Memory.cube_id, day, func.count())
        .where(*scoped, Memory.created_at >= start)
        .group_by(Memory.cube_id, day)
    )
    for cid, d, n in rows:
        per_day[cid][d.date()] = n
    before_rows = await session.execute(
        select(Memory.cube_id, func.count())
        .where(*scoped, Memory.created_at < start)
        .group_by(Memory.cube_id)
    )
    before = {cid: n for cid, n in before_rows}
    return {
        cid: Growth(
            days=[DayCount(d, per_day[cid].get(d, 0)) for d in window], before=before.get(cid, 0)
        )
        for cid in cube_ids
    }


# --- jobs --------------------------------------------------------------------------------


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


async def job_counts(session: AsyncSession, *, tenant_id: uuid.UUID) -> dict[str, dict[str, int]]:
    """Job counts of the tenant: ``{kind: {status: n}}`` plus ``"all"`` over every kind."""
    rows = await session.execute(
        select(Job.kind, Job.status, func.count())
        .where(Job.tenant_id == tenant_id)
        .group_by(Job.kind, Job.status)
    )
    out: dict[str, dict[str, int]] = {"all": dict.fromkeys(JOB_STATUSES, 0)}
    for kind, status, n in rows:
        out.setdefault(kind, dict.fromkeys(JOB_STATUSES, 0))[status] = n
        out["all"][status] = out["all"].get(status, 0) + n
    return out


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
    cube_of: dict[uuid.UUID, uuid.UUID] = {}
    if mids:
        rows = await session.execute(
            select(Memory.id, Memory.cube_id).where(
                Memory.tenant_id == tenant_id, Memory.id.in_(mids)
            )
        )
        cube_of = {mid: cid for mid, cid in rows}
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


async def links_of(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID
) -> list[LinkView]:
    """Live links from and to a memory (the API's ``/links``), strongest first, with the
    other end's content."""
    found: list[LinkRead] = []
    cursor: str | None = None
    while True:
        chunk = await link_store.for_memory(
            session, tenant_id=tenant_id, memory_id=memory_id, cursor=cursor, limit=1000
        )
        found.extend(chunk.items)
        cursor = chunk.next_cursor
        if cursor is None:
            break
    others = {link.target_id if link.source_id == memory_id else link.source_id for link in found}
    rows = await session.execute(
        select(Memory.id, Memory.content, Memory.status).where(
            Memory.tenant_id == tenant_id, Memory.id.in_(others)
        )
    )
    ends = {mid: (content, status) for mid, content, status in rows}
    out = []
    for link in found:
        outgoing = link.source_id == memory_id
        other = link.target_id if outgoing else link.source_id
        content, status = ends.get(other, ("", "erased"))
        out.append(
            LinkView(
                id=link.id,
                direction="out" if outgoing else "in",
                relation=link.relation,
                weight=link.weight,
                reason=link.reason,
                created_by=link.created_by,
                created_at=link.created_at,
                other_id=other,
                other_content=content,
                other_status=status,
            )
        )
    return sorted(out, key=lambda v: (-v.weight, v.relation, str(v.other_id)))


async def memory_ids_exist(
    session: AsyncSession, *, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of ``ids`` are the tenant's (not erased) memories: only those get links."""
    if not ids:
        return set()
    rows = await session.execute(
        select(Memory.id).where(
            Memory.id.in_(ids), Memory.tenant_id == tenant_id, Memory.status != "erased"
        )
    )
    return {r for (r,) in rows}
