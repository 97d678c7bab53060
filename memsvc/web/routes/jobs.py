"""Background jobs: counts, what is queued or running, dead letters with errors, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse

from memsvc.jobs import queue
from memsvc.schemas.common import INT64_MAX
from memsvc.store import stats as numbers
from memsvc.web import queries
from memsvc.web.deps import FormDep, SessionDep, WebDep
from memsvc.web.errors import AdminRoute
from memsvc.web.render import SECURITY_HEADERS, page

router = APIRouter(prefix="/admin/jobs", route_class=AdminRoute, include_in_schema=False)

PAGE = 50


@router.get("")
async def jobs_page(
    request: Request, web: WebDep, session: SessionDep, cursor: str | None = None
) -> Response:
    """Counts by kind and status, dead letters with their errors, and the open queue."""
    counts = await numbers.job_counts(session, tenant_id=web.tenant_id)
    dead = await queries.jobs(
        session, tenant_id=web.tenant_id, status="failed", cursor=cursor, limit=PAGE
    )
    running = await queries.jobs(
        session, tenant_id=web.tenant_id, status="running", cursor=None, limit=PAGE
    )
    queued = await queries.jobs(
        session, tenant_id=web.tenant_id, status="queued", cursor=None, limit=PAGE
    )
    retried = request.query_params.get("msg") == "retried"
    return page(
        request,
        "jobs.html",
        counts=counts,
        statuses=numbers.JOB_STATUSES,
        dead=dead,
        cursor=cursor,
        open_jobs=running.items + queued.items,
        more_open=bool(running.next_cursor or queued.next_cursor),
        message="Queued again with its attempts reset." if retried else None,
    )


@router.post("/{job_id}/retry")
async def retry(
    job_id: Annotated[int, Path(ge=1, le=INT64_MAX)], _: FormDep, web: WebDep, session: SessionDep
) -> Response:
    """Put a dead letter back in the queue with its attempts reset (the API's retry)."""
    await queue.retry(session, tenant_id=web.tenant_id, job_id=job_id)
    return RedirectResponse("/admin/jobs?msg=retried", status_code=303, headers=SECURITY_HEADERS)
