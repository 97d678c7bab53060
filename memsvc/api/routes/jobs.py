"""Background jobs: counts, dead letters, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from memsvc.api.deps import PrincipalDep, SessionDep
from memsvc.jobs import queue
from memsvc.schemas import JobRead, JobsRead, JobStatus
from memsvc.schemas.common import INT64_MAX

JobId = Annotated[int, Path(ge=1, le=INT64_MAX)]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("", response_model=JobsRead)
async def list_jobs(
    principal: PrincipalDep,
    session: SessionDep,
    status: JobStatus | None = None,
    kind: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobsRead:
    """Counts by status and the newest dead letters; with ``status``/``kind`` also a page."""
    return await queue.overview(
        session,
        tenant_id=principal.tenant_id,
        status=status,
        kind=kind,
        cursor=cursor,
        limit=limit,
    )


@router.get("/{job_id}", response_model=JobRead)
async def get_job(job_id: JobId, principal: PrincipalDep, session: SessionDep) -> JobRead:
    """One job of the caller's tenant."""
    return await queue.get(session, tenant_id=principal.tenant_id, job_id=job_id)


@router.post("/{job_id}/retry", response_model=JobRead)
async def retry_job(job_id: JobId, principal: PrincipalDep, session: SessionDep) -> JobRead:
    """Queue a dead letter again with its attempts reset (409 unless it is ``failed``)."""
    return await queue.retry(session, tenant_id=principal.tenant_id, job_id=job_id)
