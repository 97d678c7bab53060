"""The admin view's routes, all under ``/admin``."""

from __future__ import annotations

from fastapi import APIRouter

from memsvc.errors import NotFound
from memsvc.web.errors import AdminRoute
from memsvc.web.routes import auth, cubes, graph, jobs, memories, tenants, traces


def build_router() -> APIRouter:
    """Every admin route; unknown ``/admin/...`` paths end on the 404 page, not the API's JSON."""
    router = APIRouter(include_in_schema=False)
    for module in (auth, cubes, memories, graph, jobs, tenants, traces):
        router.include_router(module.router)
    fallback = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)

    @fallback.api_route("/{rest:path}", methods=["GET", "POST"])
    async def not_found(rest: str) -> None:
        raise NotFound("page not found")

    router.include_router(fallback)
    return router
