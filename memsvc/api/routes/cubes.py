"""Cubes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from memsvc.api.deps import CubeDep, PrincipalDep, SessionDep
from memsvc.schemas import CubeCreate, CubePage, CubeRead, CubeUpdate
from memsvc.store import cubes

router = APIRouter(prefix="/v1/cubes", tags=["cubes"])


@router.post("", status_code=201, response_model=CubeRead)
async def create_cube(body: CubeCreate, principal: PrincipalDep, session: SessionDep) -> CubeRead:
    """Create a memory container."""
    return await cubes.create(session, tenant_id=principal.tenant_id, data=body)


@router.get("", response_model=CubePage)
async def list_cubes(
    principal: PrincipalDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CubePage:
    """The caller's cubes, oldest first."""
    return await cubes.get_all(session, tenant_id=principal.tenant_id, cursor=cursor, limit=limit)


@router.get("/{cube_id}", response_model=CubeRead)
async def get_cube(cube: CubeDep, principal: PrincipalDep, session: SessionDep) -> CubeRead:
    """One cube, with its memory count."""
    return await cubes.get(session, tenant_id=principal.tenant_id, cube_id=cube.id)


@router.patch("/{cube_id}", response_model=CubeRead)
async def update_cube(
    cube: CubeDep, body: CubeUpdate, principal: PrincipalDep, session: SessionDep
) -> CubeRead:
    """Rename or re-describe a cube."""
    return await cubes.update(session, tenant_id=principal.tenant_id, cube_id=cube.id, data=body)


@router.delete("/{cube_id}", status_code=204)
async def delete_cube(cube: CubeDep, principal: PrincipalDep, session: SessionDep) -> Response:
    """Retire a cube."""
    await cubes.delete(session, tenant_id=principal.tenant_id, cube_id=cube.id)
    return Response(status_code=204)
