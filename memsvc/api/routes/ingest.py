"""Ingest (messages through a write policy), the core blocks, decisions, feedback and the
write policies with their trained versions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from memsvc.api.deps import (
    AdminDep,
    CubeDep,
    IdempotencyKeyDep,
    PrincipalDep,
    SessionDep,
    StateDep,
    write_quota,
)
from memsvc.llm import Usage
from memsvc.policy import ingest, training
from memsvc.schemas import MemoryRead
from memsvc.schemas.cubes import PolicyName
from memsvc.schemas.ingest import (
    CoreRead,
    DecisionFilters,
    DecisionPage,
    FeedbackCreate,
    FeedbackRead,
    IngestAccepted,
    IngestRequest,
    IngestResponse,
    PolicyActivate,
    PolicyList,
    PolicyTrainRequest,
    PolicyTrainResponse,
    PolicyVersionRead,
)
from memsvc.store import idempotency
from memsvc.store import ingest as store
from memsvc.store import memories as memstore
from memsvc.store import policies as policy_store
from memsvc.store.llm_usage import TenantBudget

router = APIRouter(prefix="/v1", tags=["ingest"])
Name = Annotated[PolicyName, Path()]
Owner = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.post(
    "/cubes/{cube_id}/ingest",
    response_model=IngestResponse,
    responses={202: {"model": IngestAccepted}},
)
async def ingest_messages(
    cube: CubeDep,
    body: IngestRequest,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    idempotency_key: IdempotencyKeyDep,
) -> IngestResponse | JSONResponse:
    """Store every message as a source and let the write policy decide what memory becomes
    of each (insert, update, merge, delete, skip; core, semantic or episodic). With
    ``"async": true``: 202 and a job (``GET /v1/jobs/{id}``). ``Idempotency-Key`` replays."""
    if body.async_:
        accepted = await ingest.enqueue(
            session,
            settings=state.settings,
            llm=state.llm,
            principal=principal,
            cube=cube,
            body=body,
            idempotency_key=idempotency_key,
        )
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202)
    n = len(body.messages)
    if idempotency_key is not None and await idempotency.answered(
        session, tenant_id=principal.tenant_id, key=idempotency_key
    ):
        n = 0
    async with write_quota(state, principal.tenant_id, n):
        return await ingest.ingest(
            session,
            runtime=state.runtime,
            llm=state.llm,
            settings=state.settings,
            principal=principal,
            cube=cube,
            body=body,
            idempotency_key=idempotency_key,
            usage=Usage(budget=TenantBudget.of(state.db, principal.tenant_id, state.settings.llm)),
        )


@router.get("/cubes/{cube_id}/core", response_model=CoreRead)
async def get_core(
    cube: CubeDep,
    principal: PrincipalDep,
    session: SessionDep,
    user_id: Owner = None,
    agent_id: Owner = None,
) -> CoreRead:
    """The cube's core blocks (profiles); with ``user_id`` or ``agent_id`` only that
    scope's."""
    rows = await store.core_blocks(
        session,
        tenant_id=principal.tenant_id,
        cube_id=cube.id,
        user_id=user_id,
        agent_id=agent_id,
        scoped=user_id is not None or agent_id is not None,
    )
    items: list[MemoryRead] = await memstore.read_many(session, rows)
    return CoreRead(items=items)


@router.get("/cubes/{cube_id}/decisions", response_model=DecisionPage)
async def list_decisions(
    cube: CubeDep,
    principal: PrincipalDep,
    session: SessionDep,
    filters: Annotated[DecisionFilters, Query()],
) -> DecisionPage:
    """What the write policies decided for the cube's ingested messages, oldest first."""
    return await store.decisions(
        session,
        tenant_id=principal.tenant_id,
        cube_id=cube.id,
        filters=filters,
        cursor=filters.cursor,
        limit=filters.limit,
    )


@router.post("/feedback", status_code=201, response_model=FeedbackRead)
async def add_feedback(
    body: FeedbackCreate, principal: PrincipalDep, session: SessionDep
) -> FeedbackRead:
    """Report memories as ``used``, ``wrong`` or ``irrelevant``: the rewards a write
    policy is trained on (``POST /v1/policies/learned/train``)."""
    n = await policy_store.add_feedback(
        session,
        tenant_id=principal.tenant_id,
        memory_ids=body.memory_ids,
        signal=body.signal,
        trace_id=body.trace_id,
        actor=principal.actor,
    )
    return FeedbackRead(recorded=n)


@router.get("/policies", response_model=PolicyList)
async def list_policies(principal: PrincipalDep, session: SessionDep) -> PolicyList:
    """The write policies, their versions (packaged and trained) and the active one."""
    return await training.listing(session, tenant_id=principal.tenant_id)


@router.post("/policies/{name}/train", status_code=201, response_model=PolicyTrainResponse)
async def train_policy(
    name: Name, body: PolicyTrainRequest, principal: AdminDep, session: SessionDep
) -> PolicyTrainResponse:
    """Train a new version from the tenant's rewards (feedback, what ``ask`` returned) and
    labelled questions; stored with its metrics, active only with ``activate``."""
    return await training.train(session, principal=principal, name=name, body=body)


@router.post("/policies/{name}/activate", response_model=PolicyVersionRead)
async def activate_policy(
    name: Name, body: PolicyActivate, principal: AdminDep, session: SessionDep
) -> PolicyVersionRead:
    """Make a version the active one (the packaged version number: back to it)."""
    return await training.activate(
        session, tenant_id=principal.tenant_id, name=name, version=body.version
    )


@router.post("/policies/{name}/rollback", response_model=PolicyVersionRead)
async def rollback_policy(
    name: Name, principal: AdminDep, session: SessionDep
) -> PolicyVersionRead:
    """Go back to the version active before the current one (the packaged one at last)."""
    return await training.rollback(session, tenant_id=principal.tenant_id, name=name)


__all__ = ["router", "uuid"]
