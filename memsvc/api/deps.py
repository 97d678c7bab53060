"""Every injectable as an ``Annotated`` alias."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.api.limits import RateLimiter, TenantLimitCache, quota_exceeded, utc_today
from memsvc.config import Settings
from memsvc.errors import BadRequest, Forbidden, NotFound, Unauthorized
from memsvc.schemas import EffectiveLimits
from memsvc.state import AppState
from memsvc.store import cubes, tenants
from memsvc.store import limits as limit_store
from memsvc.store.tenants import Principal

# Dependencies are ``async`` even when they never await: FastAPI runs a plain function in
# its thread pool, a thread hop per dependency per request for nothing (no throughput
# change could be measured at 8 clients on 2 cores, but nothing here needs a thread).


async def get_state(request: Request) -> AppState:
    """The process-wide services built by the app's lifespan."""
    state: AppState = request.app.state.memsvc
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


TENANT_HEADER = "x-tenant-id"


def rate_limiter(state: AppState) -> RateLimiter:
    """The process's per-key token buckets (``limits.rate_per_s``, ``limits.rate_burst``)."""
    limiter = state.extras.get("rate_limiter")
    if not isinstance(limiter, RateLimiter):
        lim = state.settings.limits
        limiter = state.extras["rate_limiter"] = RateLimiter(lim.rate_per_s, lim.rate_burst)
    return limiter


def tenant_limit_cache(state: AppState) -> TenantLimitCache:
    """The process's cache of each tenant's effective limits."""
    cache = state.extras.get("tenant_limits")
    if not isinstance(cache, TenantLimitCache):
        cache = state.extras["tenant_limits"] = TenantLimitCache()
    return cache


async def tenant_limits(state: AppState, tenant_id: uuid.UUID) -> EffectiveLimits:
    """The limits that apply to a tenant (its overrides, else the server's defaults),
    read from the database at most every few seconds."""
    cache = tenant_limit_cache(state)
    hit = cache.get(tenant_id)
    if hit is not None:
        return hit
    async with state.db.transaction() as session:
        own = await limit_store.overrides(session, tenant_id=tenant_id)
    found = limit_store.effective(own, state.settings.limits)
    cache.put(tenant_id, found)
    return found


@asynccontextmanager
async def write_quota(state: AppState, tenant_id: uuid.UUID, n: int) -> AsyncIterator[None]:
    """Count ``n`` memory writes against the tenant's daily quota before any work (429
    ``quota_exceeded`` with ``Retry-After`` until midnight UTC when over it); the count is
    given back when the work fails."""
    quota = (await tenant_limits(state, tenant_id)).daily_write_quota
    if quota <= 0 or n <= 0:
        yield
        return
    day = utc_today()
    async with state.db.transaction() as session:
        ok = await limit_store.reserve_writes(
            session, tenant_id=tenant_id, day=day, n=n, quota=quota
        )
    if not ok:
        raise quota_exceeded(quota, n)
    try:
        yield
    except Exception:
        with suppress(Exception):  # the original error matters more than the count
            async with state.db.transaction() as session:
                await limit_store.refund_writes(session, tenant_id=tenant_id, day=day, n=n)
        raise


async def get_principal(request: Request, state: StateDep) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` (401 when missing or unknown).

    An operator acts on the tenant named by ``X-Tenant-Id`` (404 when there is none such);
    any other key may only name its own tenant there (403 otherwise, whether or not the
    named tenant exists)."""
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    principal = await state.keys.lookup(raw.strip())
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    own = await tenant_limits(state, principal.tenant_id)
    rate_limiter(state).check(principal.key_id, rate_per_s=own.rate_per_s, burst=own.rate_burst)
    named = request.headers.get(TENANT_HEADER)
    if named is not None:
        principal = await _acting(state, principal, named)
    request.state.principal = principal
    return principal


async def _acting(state: AppState, principal: Principal, named: str) -> Principal:
    """The principal acting on the tenant named in ``X-Tenant-Id``."""
    try:
        tenant_id = uuid.UUID(named.strip())
    except ValueError as exc:
        raise BadRequest("X-Tenant-Id must be a tenant id", code="invalid_tenant_id") from exc
    if tenant_id == principal.tenant_id:
        return principal
    if not principal.operator:
        raise Forbidden("only an operator key may act on another tenant")
    async with state.db.transaction() as session:
        if not await tenants.exists(session, tenant_id=tenant_id):
            raise NotFound("tenant not found", code="tenant_not_found")
    return dataclasses.replace(principal, tenant_id=tenant_id)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_session(state: StateDep, principal: PrincipalDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request, scoped to the caller's tenant by row-level security,
    committed before the response is sent."""
    async with state.db.tenant_transaction(principal.tenant_id) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_system_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A transaction across tenants, for operator actions (creating tenants and their keys)."""
    async with state.db.transaction() as session:
        yield session


SystemSessionDep = Annotated[AsyncSession, Depends(get_system_session, scope="function")]


async def require_admin(principal: PrincipalDep) -> Principal:
    """A tenant admin or operator key, or 403."""
    if not principal.admin:
        raise Forbidden("this action needs an admin key")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


async def require_operator(principal: PrincipalDep) -> Principal:
    """The operator key, or 403 (tenant admins included)."""
    if not principal.operator:
        raise Forbidden("this action needs the operator key")
    return principal


OperatorDep = Annotated[Principal, Depends(require_operator)]


async def get_cube(
    cube_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> cubes.CubeRef:
    """The caller's cube named in the path, or 404 (also for other tenants' cubes)."""
    return await cubes.require(session, tenant_id=principal.tenant_id, cube_id=cube_id)


CubeDep = Annotated[cubes.CubeRef, Depends(get_cube)]


async def idempotency_key(
    key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=300)] = None,
) -> str | None:
    """The ``Idempotency-Key`` header, if any."""
    if key is not None and not key.strip():
        raise BadRequest("Idempotency-Key must not be blank", code="invalid_idempotency_key")
    return key


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
