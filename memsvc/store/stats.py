"""Numbers the admin view shows: memories by status and by day, open jobs by cube and kind.

Every query is scoped by tenant. Rows leave as small frozen dataclasses, never ORM objects.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, cast, func, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.models import Job, Memory

JOB_STATUSES = ("queued", "running", "failed", "done")
_UUID_RE = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _job_memory_id() -> Any:
    """The memory a job is about (``payload.memory_id``), NULL when absent or malformed."""
    raw = Job.payload["memory_id"].astext
    return case((raw.op("~")(_UUID_RE), cast(raw, PG_UUID(as_uuid=True))), else_=None)


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
