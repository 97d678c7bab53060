"""Cube export (streamed JSON lines) and import (JSON lines): ``memsvc.schemas.transfer``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from memsvc.api.deps import CubeDep, PrincipalDep, SessionDep, StateDep, write_quota
from memsvc.policy import transfer
from memsvc.schemas.transfer import MEDIA_TYPE, ImportResult, MemoryRecord
from memsvc.store import cubes

router = APIRouter(prefix="/v1/cubes", tags=["transfer"])

NDJSON: dict[str, Any] = {"content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}


@router.get(
    "/{cube_id}/export",
    response_class=StreamingResponse,
    responses={200: {"description": "The cube as JSON lines", **NDJSON}},
)
async def export_cube(
    cube: CubeDep, principal: PrincipalDep, session: SessionDep, state: StateDep
) -> StreamingResponse:
    """Every memory with all its versions, sources and links, streamed as JSON lines."""
    read = await cubes.get(session, tenant_id=principal.tenant_id, cube_id=cube.id)
    lines = transfer.export_lines(state.db, tenant_id=principal.tenant_id, cube=read)
    return StreamingResponse(lines, media_type=MEDIA_TYPE)


@router.post(
    "/{cube_id}/import",
    response_model=ImportResult,
    openapi_extra={"requestBody": {"required": True, **NDJSON}},
)
async def import_cube(
    cube: CubeDep,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
) -> ImportResult:
    """Write export records into the cube, all or nothing; a re-sent line writes nothing
    twice (ids derive from the cube and the exported id)."""
    records = transfer.parse_lines(await request.body())
    n = sum(isinstance(rec, MemoryRecord) for _, rec in records)
    async with write_quota(state, principal.tenant_id, n):
        return await transfer.import_lines(
            session,
            runtime=state.runtime,
            limits=state.settings.limits,
            tenant_id=principal.tenant_id,
            cube_id=cube.id,
            ann_indexed=cube.ann_indexed,
            records=records,
            max_attempts=state.settings.jobs.max_attempts,
            fold_delay_s=state.settings.ann_fold_delay_s,
        )
