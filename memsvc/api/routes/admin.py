"""Tenants and API keys (admin keys only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from memsvc.api.deps import AdminDep, SessionDep, StateDep, SystemSessionDep
from memsvc.schemas import KeyCreate, KeyCreated, KeyPage, TenantCreate, TenantRead
from memsvc.store import tenants

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post("/tenants", status_code=201, response_model=TenantRead)
async def create_tenant(body: TenantCreate, _: AdminDep, session: SystemSessionDep) -> TenantRead:
    """Create a tenant (operator action)."""
    return await tenants.create_tenant(session, name=body.name)


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, admin: AdminDep, session: SystemSessionDep) -> KeyCreated:
    """Create a key for the caller's tenant, or for ``tenant_id`` (operator action)."""
    return await tenants.create_key(
        session,
        tenant_id=body.tenant_id or admin.tenant_id,
        name=body.name,
        admin=body.admin,
        actor=admin.actor,
    )


@router.get("/keys", response_model=KeyPage)
async def list_keys(
    admin: AdminDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> KeyPage:
    """The caller's tenant's keys, without secrets."""
    return await tenants.list_keys(session, tenant_id=admin.tenant_id, cursor=cursor, limit=limit)


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(
    key_id: uuid.UUID, admin: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    """Revoke a key of the caller's tenant."""
    await tenants.revoke_key(session, tenant_id=admin.tenant_id, key_id=key_id, actor=admin.actor)
    state.keys.forget_all()
    return Response(status_code=204)
