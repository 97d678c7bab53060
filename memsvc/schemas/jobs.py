"""Background jobs: counts, dead letters and single jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from memsvc.schemas.common import JSONObject, Page, ReadModel

JobStatus = Literal["queued", "running", "done", "failed"]


class JobCounts(ReadModel):
    queued: int = 0
    running: int = 0
    failed: int = 0
    done: int = 0


class JobRead(ReadModel):
    """One job; ``failed`` means parked as a dead letter (retry it to run it again)."""

    id: int
    kind: str
    status: JobStatus
    payload: JSONObject
    attempts: int
    max_attempts: int
    last_error: str | None = None
    result: JSONObject | None = None
    tenant_id: uuid.UUID | None = None
    run_after: datetime
    locked_by: str | None = None
    created_at: datetime
    updated_at: datetime


JobPage = Page[JobRead]


class JobsRead(ReadModel):
    """``GET /v1/jobs``: counts by status, the newest dead letters, and a page when filtered."""

    counts: JobCounts
    dead_letters: list[JobRead]
    items: list[JobRead] = Field(default_factory=list)
    next_cursor: str | None = None
