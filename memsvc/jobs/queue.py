"""A durable job queue in Postgres, taken with ``SELECT ... FOR UPDATE SKIP LOCKED``.

Why our own queue and not procrastinate: the enrichment job must commit **in the same
transaction** that writes the memory (an acknowledged write is never left unenriched, a
rolled-back one leaves no job). Recent procrastinate releases can defer on a connection
the caller hands them, so that alone no longer rules it out. It stays out because:

- jobs are tenant data: ``GET /v1/jobs/{id}`` and the admin view read them under the same
  row-level security as memories (migration 0003); procrastinate's tables and SQL
  functions live outside that policy and outside alembic (it ships its own migrations);
- one write request enqueues hundreds of jobs in one INSERT
  (:func:`memsvc.store.jobs.enqueue_many`), inside the SQLAlchemy session; deferring
  through procrastinate is a function call per job on the raw driver connection;
- the queue is small: claiming is one UPDATE over a ``SKIP LOCKED`` subquery (any number
  of workers, in any number of processes, never take the same job; bench/scaleout.py
  checks it), stale locks are reclaimed by age, and failures become dead letters with a
  safe ``last_error``.

Revisit if we need its periodic tasks, LISTEN/NOTIFY wake-ups or job locks by key.

Life of a job::

    queued --claim--> running --done--> done
                         |--error, attempts left--> queued (run_after = now + backoff)
                         |--error, last attempt---> failed (dead letter, last_error kept)
                         '--lock older than lock_timeout_s (worker died)--> queued / failed
    failed --retry (API)--> queued (attempts reset)
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import Conflict, NotFound
from memsvc.schemas import JobCounts, JobPage, JobRead, JobsRead
from memsvc.store.jobs import enqueue_many
from memsvc.store.models import Job
from memsvc.store.pagination import fetch_page

__all__ = [
    "ClaimedJob",
    "claim",
    "complete",
    "counts",
    "dead_letters",
    "enqueue_many",
    "fail",
    "get",
    "get_all",
    "heartbeat",
    "overview",
    "release",
    "requeue_stale",
    "retry",
]

MAX_BACKOFF_S = 3600.0
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds the lock of."""

    id: int
    kind: str
    tenant_id: uuid.UUID | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


def _read(job: Job) -> JobRead:
    return JobRead(
        id=job.id,
        kind=job.kind,
        status=job.status,
        payload=job.payload or {},
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        last_error=job.last_error,
        result=job.result,
        tenant_id=job.tenant_id,
        run_after=job.run_after,
        locked_by=job.locked_by,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


async def claim(
    session: AsyncSession, *, worker_id: str, limit: int = 1, kinds: Sequence[str] | None = None
) -> list[ClaimedJob]:
    """Lock up to ``limit`` ready jobs for this worker (others skip them, never wait)."""
    ready = (
        select(Job.id)
        .where(Job.status == "queued", Job.run_after <= func.now())
        .order_by(Job.run_after, Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if kinds:
        ready = ready.where(Job.kind.in_(kinds))
    # A CTE runs once: an ``IN (subquery)`` may be re-scanned, and every re-scan of a
    # SKIP LOCKED subquery picks other rows (claiming more than ``limit``).
    picked = ready.cte("picked")
    rows = await session.execute(
        update(Job)
        .where(Job.id == picked.c.id, Job.status == "queued")
        .values(
            status="running",
            locked_by=worker_id,
            locked_at=func.now(),
            attempts=Job.attempts + 1,
            updated_at=func.now(),
        )
        .returning(Job.id, Job.kind, Job.tenant_id, Job.payload, Job.attempts, Job.max_attempts)
    )
    return [
        ClaimedJob(
            id=r.id,
            kind=r.kind,
            tenant_id=r.tenant_id,
            payload=dict(r.payload or {}),
            attempts=r.attempts,
            max_attempts=r.max_attempts,
        )
        for r in rows
    ]


def _held(job_id: int, worker_id: str) -> Any:
    return (Job.id == job_id, Job.locked_by == worker_id, Job.status == "running")


async def heartbeat(session: AsyncSession, *, job_id: int, worker_id: str) -> bool:
    """Refresh the lock of a running job; False when the lock was lost (re-queued)."""
    res = await session.execute(
        update(Job).where(*_held(job_id, worker_id)).values(locked_at=func.now())
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def complete(
    session: AsyncSession, *, job_id: int, worker_id: str, result: dict[str, Any]
) -> bool:
    """Mark a held job done with its result; False when this worker no longer held it."""
    res = await session.execute(
        update(Job)
        .where(*_held(job_id, worker_id))
        .values(status="done", result=result, locked_by=None, locked_at=None, updated_at=func.now())
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def backoff_s(attempts: int, base_s: float) -> float:
    """Delay before the next try: ``base * 2^(attempts-1)``, capped, with 10% jitter."""
    delay = min(base_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S)
    return delay * (1 + random.random() * 0.1) if delay > 0 else 0.0


async def fail(
    session: AsyncSession,
    *,
    job: ClaimedJob,
    worker_id: str,
    error: str,
    backoff_base_s: float,
    result: dict[str, Any] | None = None,
) -> str | None:
    """Record a failed try: re-queue with backoff, or park as ``failed`` after the last one.

    Returns the job's new status, or None when this worker no longer held it.
    """
    parked = job.attempts >= job.max_attempts
    delay = 0.0 if parked else backoff_s(job.attempts, backoff_base_s)
    res = await session.execute(
        update(Job)
        .where(*_held(job.id, worker_id))
        .values(
            status="failed" if parked else "queued",
            last_error=error[-MAX_ERROR_CHARS:],
            result=result,
            run_after=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, delay),
            locked_by=None,
            locked_at=None,
            updated_at=func.now(),
        )
        .returning(Job.status)
    )
    return res.scalar_one_or_none()


async def release(session: AsyncSession, *, job: ClaimedJob, worker_id: str) -> None:
    """Give back a job interrupted by a shutdown: queued again, the try not counted."""
    await session.execute(
        update(Job)
        .where(*_held(job.id, worker_id))
        .values(
            status="queued",
            attempts=func.greatest(Job.attempts - 1, 0),
            locked_by=None,
            locked_at=None,
            updated_at=func.now(),
        )
    )


async def requeue_stale(session: AsyncSession, *, lock_timeout_s: float) -> list[ClaimedJob]:
    """Take back jobs whose worker stopped heart-beating (killed); returns the parked ones.

    A job found this way after its last attempt is parked as ``failed`` instead, so a job
    that kills its worker every time still ends as a dead letter.
    """
    stale = (
        select(Job.id)
        .where(
            Job.status == "running",
            Job.locked_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, lock_timeout_s),
        )
        .with_for_update(skip_locked=True)
        .cte("stale")
    )
    rows = await session.execute(
        update(Job)
        .where(Job.id == stale.c.id, Job.status == "running")
        .values(
            status=case((Job.attempts >= Job.max_attempts, "failed"), else_="queued"),
            last_error=func.concat(
                "worker ", Job.locked_by, " stopped while running the job (lock expired)"
            ),
            run_after=func.now(),
            locked_by=None,
            locked_at=None,
            updated_at=func.now(),
        )
        .returning(
            Job.id,
            Job.kind,
            Job.tenant_id,
            Job.payload,
            Job.attempts,
            Job.max_attempts,
            Job.status,
        )
    )
    return [
        ClaimedJob(
            id=r.id,
            kind=r.kind,
            tenant_id=r.tenant_id,
            payload=dict(r.payload or {}),
            attempts=r.attempts,
            max_attempts=r.max_attempts,
        )
        for r in rows
        if r.status == "failed"
    ]


# Finished jobs deleted per transaction by ``prune_done``.
PRUNE_BATCH = 5_000


async def prune_done(
    session: AsyncSession, *, older_than_s: float, limit: int = PRUNE_BATCH
) -> int:
    """Delete up to ``limit`` jobs that finished more than ``older_than_s`` ago; how many.

    Only ``done`` jobs: dead letters stay for operators, queued/running ones are work.
    """
    old = (
        select(Job.id)
        .where(
            Job.status == "done",
            Job.updated_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_s),
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    res = await session.execute(delete(Job).where(Job.id.in_(old)).returning(Job.id))
    return len(res.all())


def _scope(stmt: Any, tenant_id: uuid.UUID | None) -> Any:
    return stmt if tenant_id is None else stmt.where(Job.tenant_id == tenant_id)


async def counts(session: AsyncSession, *, tenant_id: uuid.UUID | None) -> JobCounts:
    """Jobs by status (of one tenant, or of all when ``tenant_id`` is None)."""
    rows = await session.execute(
        _scope(select(Job.status, func.count()), tenant_id).group_by(Job.status)
    )
    return JobCounts(**{status: n for status, n in rows if status in JobCounts.model_fields})


async def dead_letters(
    session: AsyncSession, *, tenant_id: uuid.UUID | None, limit: int
) -> list[JobRead]:
    """The newest parked (``failed``) jobs."""
    rows = await session.execute(
        _scope(select(Job).where(Job.status == "failed"), tenant_id)
        .order_by(Job.updated_at.desc(), Job.id.desc())
        .limit(limit)
    )
    return [_read(j) for j in rows.scalars()]


async def get_all(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID | None,
    status: str | None,
    kind: str | None = None,
    cursor: str | None,
    limit: int,
) -> JobPage:
    """A page of jobs, oldest first, optionally of one status/kind."""
    stmt = _scope(select(Job), tenant_id)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    page, nxt = await fetch_page(session, stmt, Job.created_at, Job.id, cursor=cursor, limit=limit)
    return JobPage(items=[_read(j) for j in page], next_cursor=nxt)


async def get(session: AsyncSession, *, tenant_id: uuid.UUID | None, job_id: int) -> JobRead:
    """One job (404 when absent or another tenant's)."""
    job = (
        await session.execute(_scope(select(Job).where(Job.id == job_id), tenant_id))
    ).scalar_one_or_none()
    if job is None:
        raise NotFound("job not found")
    return _read(job)


async def retry(session: AsyncSession, *, tenant_id: uuid.UUID | None, job_id: int) -> JobRead:
    """Put a dead letter back in the queue with its attempts reset (409 unless ``failed``)."""
    job = (
        await session.execute(
            _scope(select(Job).where(Job.id == job_id), tenant_id).with_for_update()
        )
    ).scalar_one_or_none()
    if job is None:
        raise NotFound("job not found")
    if job.status != "failed":
        raise Conflict(
            f"only failed jobs can be retried; this one is {job.status}",
            code="job_not_failed",
            detail={"status": job.status},
        )
    job.status = "queued"
    job.attempts = 0
    job.run_after = func.now()
    job.updated_at = func.now()
    await session.flush()
    await session.refresh(job)
    return _read(job)


DEAD_LETTERS_SHOWN = 100


async def overview(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID | None,
    status: str | None = None,
    kind: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> JobsRead:
    """Counts, the newest dead letters, and (when filtered by status/kind) a page of jobs."""
    page = None
    if status is not None or kind is not None or cursor is not None:
        page = await get_all(
            session, tenant_id=tenant_id, status=status, kind=kind, cursor=cursor, limit=limit
        )
    return JobsRead(
        counts=await counts(session, tenant_id=tenant_id),
        dead_letters=await dead_letters(session, tenant_id=tenant_id, limit=DEAD_LETTERS_SHOWN),
        items=page.items if page else [],
        next_cursor=page.next_cursor if page else None,
    )
