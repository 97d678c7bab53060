"""Every injectable as an ``Annotated`` alias."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.config import Settings
from memsvc.errors import BadRequest, Forbidden, Unauthorized
from memsvc.state import AppState
from memsvc.store import cubes
from memsvc.store.tenants import Principal


def get_state(request: Request) -> AppState:
    """The process-wide services built by the app's lifespan."""
    state: AppState = request.app.state.memsvc
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_principal(request: Request, state: StateDep) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` (401 when missing or unknown)."""
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    principal = await state.keys.lookup(raw.strip())
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    request.state.principal = principal
    return principal


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


def require_admin(principal: PrincipalDep) -> Principal:
    """An admin key, or 403."""
    if not principal.admin:
        raise Forbidden("this action needs an admin key")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


async def get_cube(
    cube_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> cubes.CubeRef:
    """The caller's cube named in the path, or 404 (also for other tenants' cubes)."""
    return await cubes.require(session, tenant_id=principal.tenant_id, cube_id=cube_id)


CubeDep = Annotated[cubes.CubeRef, Depends(get_cube)]


def idempotency_key(
    key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=300)] = None,
) -> str | None:
    """The ``Idempotency-Key`` header, if any."""
    if key is not None and not key.strip():
        raise BadRequest("Idempotency-Key must not be blank", code="invalid_idempotency_key")
    return key


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
