"""Graph API: links of a memory, manual links, cube graph with analysis, paths, isolation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from memsvc.store import links as link_store
from memsvc.store.models import Memory
from tests.api.helpers import add, assert_error, make_cube, new_tenant_key
from tests.conftest import Service
from tests.graph.helpers import app_state, links_of

pytestmark = pytest.mark.anyio


async def link(svc: Service, src: str, dst: str, relation: str = "related", **extra: Any) -> Any:
    resp = await svc.client.post(
        "/v1/links",
        json={"source_id": src, "target_id": dst, "relation": relation, **extra},
        headers=svc.auth(),
    )
    return resp


async def chain(svc: Service, n: int) -> tuple[str, list[str]]:
    cube = await make_cube(svc)
    mems = await add(svc, cube, *({"content": f"memory number {i}"} for i in range(n)))
    return cube, [m["id"] for m in mems]


async def test_manual_links_are_first_class(service: Service) -> None:
    _, (a, b, c) = await chain(service, 3)
    resp = await link(service, a, b, "elaborates", weight=0.7, reason="adds detail")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {
        "id",
        "source_id",
        "target_id",
        "relation",
        "weight",
        "reason",
        "created_by",
        "created_at",
    }
    assert (body["source_id"], body["target_id"], body["relation"]) == (a, b, "elaborates")
    assert (body["weight"], body["reason"]) == (0.7, "adds detail")
    assert body["created_by"].startswith("key:")

    # Both directions are listed; a duplicate live edge is a 409 (also reversed if symmetric).
    assert [ln["id"] for ln in await links_of(service, b)] == [body["id"]]
    assert_error(await link(service, a, b, "elaborates"), 409, "link_exists")
    assert (await link(service, b, a, "elaborates")).status_code == 201
    assert (await link(service, a, c, "related")).status_code == 201
    assert_error(await link(service, c, a, "related"), 409, "link_exists")
    assert_error(await link(service, a, a, "related"), 400, "self_link")
    assert_error(await link(service, a, b, "likes"), 422, "validation_error")
    assert_error(await link(service, a, b, weight=2.0), 422, "validation_error")

    other_cube = await make_cube(service, "other-cube")
    [far] = await add(service, other_cube, {"content": "elsewhere"})
    assert_error(await link(service, a, far["id"]), 400, "cross_cube_link")

    # Delete: gone from the listing, 404 the second time, and the edge can be made again.
    d = await service.client.delete(f"/v1/links/{body['id']}", headers=service.auth())
    assert d.status_code == 204
    assert body["id"] not in [ln["id"] for ln in await links_of(service, a)]
    assert_error(
        await service.client.delete(f"/v1/links/{body['id']}", headers=service.auth()), 404
    )
    assert (await link(service, a, b, "elaborates")).status_code == 201


async def test_other_tenants_ids_are_404(service: Service) -> None:
    cube, (a, b) = await chain(service, 2)
    made = (await link(service, a, b)).json()
    other = await new_tenant_key(service, "intruder")
    h = service.auth(other)
    c = service.client
    assert_error(await c.get(f"/v1/memories/{a}/links", headers=h), 404, "not_found")
    assert_error(await c.delete(f"/v1/links/{made['id']}", headers=h), 404, "not_found")
    assert_error(
        await c.post(
            "/v1/links", json={"source_id": a, "target_id": b, "relation": "related"}, headers=h
        ),
        404,
    )
    assert_error(await c.get(f"/v1/cubes/{cube}/graph", headers=h), 404)
    assert_error(
        await c.get(f"/v1/cubes/{cube}/graph/path", params={"source": a, "target": b}, headers=h),
        404,
    )
    assert_error(await c.get(f"/v1/memories/{uuid.uuid4()}/links", headers=service.auth()), 404)


async def test_cube_graph_has_importance_communities_and_paths(service: Service) -> None:
    # Two triangles joined by one bridge (a3 - b1), plus an isolated memory.
    cube, ids = await chain(service, 7)
    a1, a2, a3, b1, b2, b3, lone = ids
    for s, t in [(a1, a2), (a2, a3), (a1, a3), (b1, b2), (b2, b3), (b1, b3), (a3, b1)]:
        assert (await link(service, s, t, weight=0.9)).status_code == 201
    g = await service.client.get(f"/v1/cubes/{cube}/graph", headers=service.auth())
    assert g.status_code == 200, g.text
    body = g.json()
    nodes = {n["id"]: n for n in body["nodes"]}
    assert set(nodes) == set(ids)
    assert body["truncated"] is False and body["center"] is None
    assert len(body["edges"]) == 7
    assert set(body["edges"][0]) == {
        "id",
        "source_id",
        "target_id",
        "relation",
        "weight",
        "reason",
        "created_by",
        "created_at",
    }
    assert (nodes[a3]["degree"], nodes[lone]["degree"]) == (3, 0)
    assert nodes[a3]["importance"] > nodes[a1]["importance"] > nodes[lone]["importance"]
    assert {nodes[x]["community"] for x in (a1, a2, a3)} != {
        nodes[x]["community"] for x in (b1, b2, b3)
    }
    assert len({nodes[x]["community"] for x in (a1, a2, a3)}) == 1
    assert nodes[a1]["label"] == "memory number 0" and nodes[a1]["kind"] == "fact"

    # Around a centre, depth-limited; ``limit`` truncates.
    near = await service.client.get(
        f"/v1/cubes/{cube}/graph", params={"center": a1, "depth": 1}, headers=service.auth()
    )
    assert {n["id"] for n in near.json()["nodes"]} == {a1, a2, a3}
    assert near.json()["center"] == a1
    two = await service.client.get(
        f"/v1/cubes/{cube}/graph", params={"center": a1, "depth": 2}, headers=service.auth()
    )
    assert {n["id"] for n in two.json()["nodes"]} == {a1, a2, a3, b1}
    cut = await service.client.get(
        f"/v1/cubes/{cube}/graph", params={"limit": 3}, headers=service.auth()
    )
    assert len(cut.json()["nodes"]) == 3 and cut.json()["truncated"] is True

    path = await service.client.get(
        f"/v1/cubes/{cube}/graph/path", params={"source": a1, "target": b2}, headers=service.auth()
    )
    body = path.json()
    assert body["found"] is True and body["length"] == 3
    assert body["memory_ids"] == [a1, a3, b1, b2]
    assert [(e["source_id"], e["target_id"]) for e in body["edges"]] == [
        (a1, a3),
        (a3, b1),
        (b1, b2),
    ]
    none = await service.client.get(
        f"/v1/cubes/{cube}/graph/path",
        params={"source": a1, "target": lone},
        headers=service.auth(),
    )
    assert none.json() == {
        "source_id": a1,
        "target_id": lone,
        "found": False,
        "memory_ids": [],
        "edges": [],
        "length": None,
    }

    # A deleted memory drops out of the graph and its links stop counting.
    await service.client.delete(f"/v1/memories/{a3}", headers=service.auth())
    g = (await service.client.get(f"/v1/cubes/{cube}/graph", headers=service.auth())).json()
    assert a3 not in {n["id"] for n in g["nodes"]} and len(g["edges"]) == 4
    gone = await service.client.get(
        f"/v1/cubes/{cube}/graph/path", params={"source": a1, "target": b2}, headers=service.auth()
    )
    assert gone.json()["found"] is False


async def test_link_inserts_keep_working_as_prepared_statements(service: Service) -> None:
    # psycopg prepares a statement after 5 runs, Postgres goes generic after 5 more; the
    # live-edge conflict target must still match the partial unique index then.
    cube, ids = await chain(service, 3)
    a, b, c = (uuid.UUID(i) for i in ids)
    async with app_state(service).db.transaction() as s:
        tenant_id = (await s.execute(select(Memory.tenant_id).limit(1))).scalar_one()
        made = []
        for _ in range(15):
            made += await link_store.insert_many(
                s,
                tenant_id=tenant_id,
                cube_id=uuid.UUID(cube),
                links=[
                    link_store.NewLink(a, b, "related", 0.5, None, "test"),
                    link_store.NewLink(c, b, "related", 0.5, None, "test"),
                    link_store.NewLink(b, c, "related", 0.5, None, "test"),  # same pair
                ],
            )
    assert len(made) == 2
    assert len(await links_of(service, ids[1])) == 2
