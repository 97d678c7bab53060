"""Tenants (the operator key) and API keys (tenant admin keys: their own tenant's)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from memsvc.api.deps import (
    AdminDep,
    OperatorDep,
    SessionDep,
    StateDep,
    SystemSessionDep,
    tenant_limit_cache,
)
from memsvc.api.limits import utc_today
from memsvc.errors import Forbidden, NotFound
from memsvc.schemas import (
    KeyCreate,
    KeyCreated,
    KeyPage,
    TenantCreate,
    TenantLimits,
    TenantLimitsRead,
    TenantPage,
    TenantRead,
)
from memsvc.store import limits as limit_store
from memsvc.store import tenants

router = APIRouter(prefix="/v1", tags=["admin"])
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post("/tenants", status_code=201, response_model=TenantRead)
async def create_tenant(
    body: TenantCreate, _: OperatorDep, session: SystemSessionDep
) -> TenantRead:
    """Create a tenant (operator key)."""
    return await tenants.create_tenant(session, name=body.name)


@router.get("/tenants", response_model=TenantPage)
async def list_tenants(
    _: OperatorDep, session: SystemSessionDep, cursor: str | None = None, limit: Limit = 100
) -> TenantPage:
    """Every tenant, oldest first (operator key)."""
    return await tenants.list_tenants(session, cursor=cursor, limit=limit)


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, admin: AdminDep, session: SystemSessionDep) -> KeyCreated:
    """Create a key for the caller's tenant; the operator may name any ``tenant_id`` and
    create operator keys."""
    tenant_id = body.tenant_id or admin.tenant_id
    role = body.resolved_role()
    if not admin.operator and tenant_id != admin.tenant_id:
        raise Forbidden("a tenant admin key creates keys in its own tenant only")
    if not admin.operator and role == "operator":
        raise Forbidden("only an operator key may create an operator key")
    return await tenants.create_key(
        session, tenant_id=tenant_id, name=body.name, role=role, actor=admin.actor
    )


@router.get("/keys", response_model=KeyPage)
async def list_keys(
    admin: AdminDep, session: SessionDep, cursor: str | None = None, limit: Limit = 100
) -> KeyPage:
    """The keys of the caller's tenant (or of ``X-Tenant-Id``'s, for the operator)."""
    return await tenants.list_keys(session, tenant_id=admin.tenant_id, cursor=cursor, limit=limit)


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(
    key_id: uuid.UUID, admin: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    """Revoke a key of the caller's tenant; only the operator revokes an operator key."""
    await tenants.revoke_key(
        session,
        tenant_id=admin.tenant_id,
        key_id=key_id,
        actor=admin.actor,
        operator=admin.operator,
    )
    state.keys.forget_all()
    return Response(status_code=204)


async def _existing(session: SystemSessionDep, tenant_id: uuid.UUID) -> None:
    if not await tenants.exists(session, tenant_id=tenant_id):
        raise NotFound("tenant not found", code="tenant_not_found")


@router.get("/tenants/{tenant_id}/limits", response_model=TenantLimitsRead)
async def get_limits(
    tenant_id: uuid.UUID, admin: AdminDep, session: SystemSessionDep, state: StateDep
) -> TenantLimitsRead:
    """A tenant's limits: its overrides (null: the server's default), the limits that apply
    and today's write count (the operator any tenant; a tenant admin its own only)."""
    if not admin.operator and tenant_id != admin.tenant_id:
        raise Forbidden("a tenant admin key reads its own tenant's limits only")
    await _existing(session, tenant_id)
    return await limit_store.read(
        session, tenant_id=tenant_id, defaults=state.settings.limits, day=utc_today()
    )


@router.put("/tenants/{tenant_id}/limits", response_model=TenantLimitsRead)
async def set_limits(
    tenant_id: uuid.UUID,
    body: TenantLimits,
    _: OperatorDep,
    session: SystemSessionDep,
    state: StateDep,
) -> TenantLimitsRead:
    """Replace a tenant's overrides (operator key); a field left out or null goes back to
    the server's default. Applies within a few seconds."""
    await _existing(session, tenant_id)
    await limit_store.set_overrides(session, tenant_id=tenant_id, limits=body)
    tenant_limit_cache(state).forget(tenant_id)
    return await limit_store.read(
        session, tenant_id=tenant_id, defaults=state.settings.limits, day=utc_today()
    )
