"""Tenants: the operator's page (tenant admins and members get a 403)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from memsvc.errors import Forbidden
from memsvc.store import tenants
from memsvc.web.deps import StateDep, WebDep
from memsvc.web.errors import AdminRoute
from memsvc.web.render import page

router = APIRouter(prefix="/admin/tenants", route_class=AdminRoute, include_in_schema=False)

PAGE = 100


@router.get("")
async def tenants_page(
    request: Request, web: WebDep, state: StateDep, cursor: str | None = None
) -> Response:
    """Every tenant of the service, oldest first (the operator key only)."""
    if not web.operator:
        raise Forbidden("the tenants page is for the operator key")
    # The session's own transaction is scoped to its tenant; tenants are service-wide.
    async with state.db.transaction() as session:
        listed = await tenants.list_tenants(session, cursor=cursor, limit=PAGE)
    return page(request, "tenants.html", tenants=listed, cursor=cursor)
