"""Memories: create, list, read, update, delete/restore/erase, versions, provenance."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from memsvc.api.deps import (
    CubeDep,
    IdempotencyKeyDep,
    PrincipalDep,
    SessionDep,
    StateDep,
    write_quota,
)
from memsvc.policy import writes
from memsvc.schemas import (
    MemoryBatchCreate,
    MemoryList,
    MemoryListQuery,
    MemoryPage,
    MemoryRead,
    MemoryUpdate,
    MemoryVersionPage,
    MemoryVersionRead,
    ProvenanceRead,
)
from memsvc.schemas.common import INT32_MAX
from memsvc.store import idempotency
from memsvc.store import memories as store
from memsvc.store import versions as history

router = APIRouter(prefix="/v1", tags=["memories"])
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post("/cubes/{cube_id}/memories", status_code=201, response_model=MemoryList)
async def create_memories(
    cube: CubeDep,
    body: MemoryBatchCreate,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    idempotency_key: IdempotencyKeyDep,
) -> MemoryList:
    """Create one or many memories atomically (``Idempotency-Key`` honoured); counted
    against the tenant's daily write quota before any work."""
    n = len(body.memories)
    if idempotency_key is not None and await idempotency.answered(
        session, tenant_id=principal.tenant_id, key=idempotency_key
    ):
        n = 0  # a retry replays the first answer and writes nothing
    async with write_quota(state, principal.tenant_id, n):
        return await writes.create_memories(
            session,
            runtime=state.runtime,
            limits=state.settings.limits,
            principal=principal,
            cube_id=cube.id,
            batch=body,
            idempotency_key=idempotency_key,
            max_attempts=state.settings.jobs.max_attempts,
            fold_delay_s=state.settings.ann_fold_delay_s,
        )


@router.get("/cubes/{cube_id}/memories", response_model=MemoryPage)
async def list_memories(
    cube: CubeDep,
    principal: PrincipalDep,
    session: SessionDep,
    query: Annotated[MemoryListQuery, Query()],
) -> MemoryPage:
    """A page of the cube's memories with filters; follow ``next_cursor`` for the rest."""
    return await store.get_all(
        session,
        tenant_id=principal.tenant_id,
        cube_id=cube.id,
        filters=query,
        cursor=query.cursor,
        limit=query.limit,
    )


@router.get("/memories/{memory_id}", response_model=MemoryRead)
async def get_memory(
    memory_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> MemoryRead:
    """One memory with its sources."""
    return await store.get(session, tenant_id=principal.tenant_id, memory_id=memory_id)


@router.patch("/memories/{memory_id}", response_model=MemoryRead)
async def update_memory(
    memory_id: uuid.UUID,
    body: MemoryUpdate,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
) -> MemoryRead:
    """Change a memory; 409 when ``expected_version`` is stale."""
    return await writes.update_memory(
        session,
        runtime=state.runtime,
        limits=state.settings.limits,
        principal=principal,
        memory_id=memory_id,
        data=body,
    )


@router.delete("/memories/{memory_id}", status_code=204)
async def delete_memory(
    memory_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, hard: bool = False
) -> Response:
    """Soft delete (restorable), or with ``hard=true`` erase content everywhere (audited)."""
    await writes.delete_memory(session, principal=principal, memory_id=memory_id, hard=hard)
    return Response(status_code=204)


@router.post("/memories/{memory_id}/restore", response_model=MemoryRead)
async def restore_memory(
    memory_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> MemoryRead:
    """Undo a soft delete."""
    return await writes.restore_memory(session, principal=principal, memory_id=memory_id)


@router.get("/memories/{memory_id}/versions", response_model=MemoryVersionPage)
async def list_versions(
    memory_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Limit = 100,
) -> MemoryVersionPage:
    """Version history, oldest first."""
    return await history.versions(
        session, tenant_id=principal.tenant_id, memory_id=memory_id, cursor=cursor, limit=limit
    )


@router.get("/memories/{memory_id}/versions/{number}", response_model=MemoryVersionRead)
async def get_version(
    memory_id: uuid.UUID,
    number: Annotated[int, Path(ge=1, le=INT32_MAX)],
    principal: PrincipalDep,
    session: SessionDep,
) -> MemoryVersionRead:
    """One version."""
    return await history.version(
        session, tenant_id=principal.tenant_id, memory_id=memory_id, number=number
    )


@router.get("/memories/{memory_id}/provenance", response_model=ProvenanceRead)
async def get_provenance(
    memory_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> ProvenanceRead:
    """Sources, actor, policy/model and causing memory of every version."""
    return await history.provenance(session, tenant_id=principal.tenant_id, memory_id=memory_id)
