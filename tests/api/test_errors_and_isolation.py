"""Auth, tenant isolation and the error shape on every error path; nothing half-written."""

from __future__ import annotations

import uuid

import pytest

from tests.api.helpers import add, assert_error, make_cube, new_tenant_key
from tests.conftest import Service

pytestmark = pytest.mark.anyio


async def test_missing_and_wrong_keys_are_401(service: Service) -> None:
    assert_error(await service.client.get("/v1/cubes"), 401, "unauthorized")
    bad = {"Authorization": "Bearer msk_000000000000_nope"}
    assert_error(await service.client.get("/v1/cubes", headers=bad), 401, "unauthorized")
    assert_error(await service.client.get("/v1/cubes", headers={"Authorization": "Basic abc"}), 401)


async def test_revoked_key_stops_working(service: Service) -> None:
    k = await service.client.post("/v1/keys", json={"name": "temp"}, headers=service.auth())
    key = k.json()["key"]
    assert (await service.client.get("/v1/cubes", headers=service.auth(key))).status_code == 200
    listed = await service.client.get("/v1/keys", headers=service.auth())
    assert all("key" not in item and "key_hash" not in item for item in listed.json()["items"])
    d = await service.client.delete(f"/v1/keys/{k.json()['id']}", headers=service.auth())
    assert d.status_code == 204
    assert_error(await service.client.get("/v1/cubes", headers=service.auth(key)), 401)


async def test_non_admin_cannot_manage_keys_or_tenants(service: Service) -> None:
    k = await service.client.post("/v1/keys", json={"name": "plain"}, headers=service.auth())
    plain = k.json()["key"]
    assert_error(
        await service.client.post("/v1/tenants", json={"name": "x"}, headers=service.auth(plain)),
        403,
        "forbidden",
    )
    assert_error(await service.client.get("/v1/keys", headers=service.auth(plain)), 403)


async def test_other_tenant_gets_404_indistinguishable_from_absent(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "secret plan"})
    other = await new_tenant_key(service, "tenant-b")
    absent_cube, absent_mem = uuid.uuid4(), uuid.uuid4()
    calls = [
        ("GET", "/v1/cubes/{c}", None),
        ("PATCH", "/v1/cubes/{c}", {"name": "stolen"}),
        ("DELETE", "/v1/cubes/{c}", None),
        ("GET", "/v1/cubes/{c}/memories", None),
        ("POST", "/v1/cubes/{c}/memories", {"memories": [{"content": "x"}]}),
        ("POST", "/v1/cubes/{c}/search", {"query": "secret"}),
        ("GET", "/v1/memories/{m}", None),
        ("PATCH", "/v1/memories/{m}", {"content": "x", "expected_version": 1}),
        ("DELETE", "/v1/memories/{m}", None),
        ("POST", "/v1/memories/{m}/restore", None),
        ("GET", "/v1/memories/{m}/versions", None),
        ("GET", "/v1/memories/{m}/versions/1", None),
        ("GET", "/v1/memories/{m}/provenance", None),
    ]
    for method, path, body in calls:
        real = await service.client.request(
            method, path.format(c=cube, m=mem["id"]), json=body, headers=service.auth(other)
        )
        fake = await service.client.request(
            method, path.format(c=absent_cube, m=absent_mem), json=body, headers=service.auth(other)
        )
        e1, e2 = assert_error(real, 404), assert_error(fake, 404)
        assert e1 == e2, (method, path)
    assert (await service.client.get("/v1/cubes", headers=service.auth(other))).json()[
        "items"
    ] == []
    still = await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())
    assert (still.json()["content"], still.json()["version"]) == ("secret plan", 1)


async def test_bad_input_gets_4xx_and_writes_nothing(service: Service) -> None:
    cube = await make_cube(service)
    url = f"/v1/cubes/{cube}/memories"
    auth = service.auth()
    too_big = "x" * (32 * 1024 + 1)
    assert_error(
        await service.client.post(
            url, json={"memories": [{"content": "ok"}, {"content": too_big}]}, headers=auth
        ),
        413,
        "content_too_large",
    )
    assert_error(
        await service.client.post(url, json={"memories": [{"content": "m"}] * 1001}, headers=auth),
        413,
        "batch_too_large",
    )
    assert_error(
        await service.client.post(
            url, content=b'{"memories": [', headers={**auth, "content-type": "application/json"}
        ),
        400,
        "invalid_json",
    )
    err = assert_error(
        await service.client.post(
            url, json={"memories": [{"content": 5, "importance": "hi"}]}, headers=auth
        ),
        422,
        "validation_error",
    )
    assert {tuple(d["loc"][-1:]) for d in err["detail"]} >= {("content",), ("importance",)}
    assert_error(await service.client.post(url, json={"memories": []}, headers=auth), 422)
    assert_error(
        await service.client.post(
            url, json={"memories": [{"content": "x", "bogus": 1}]}, headers=auth
        ),
        422,
    )
    assert_error(
        await service.client.post(url, json={"memories": [{"content": "   "}]}, headers=auth), 422
    )
    listed = await service.client.get(url, headers=auth)
    assert listed.json()["items"] == []


async def test_other_error_paths_have_the_shape(service: Service) -> None:
    auth = service.auth()
    assert_error(await service.client.get("/v1/nope", headers=auth), 404, "not_found")
    assert_error(await service.client.put("/v1/cubes", headers=auth), 405, "method_not_allowed")
    assert_error(await service.client.get("/v1/memories/not-a-uuid", headers=auth), 422)
    assert_error(
        await service.client.get("/v1/cubes", params={"cursor": "%%%"}, headers=auth),
        400,
        "invalid_cursor",
    )
    cube = await make_cube(service)
    assert_error(
        await service.client.post("/v1/cubes", json={"name": "agent-1"}, headers=auth),
        409,
        "cube_exists",
    )
    assert_error(
        await service.client.post(
            f"/v1/cubes/{cube}/search", json={"query": "x", "preset": "zz"}, headers=auth
        ),
        400,
        "unknown_preset",
    )
    assert_error(
        await service.client.post(
            f"/v1/cubes/{cube}/search", json={"query": "x", "top_k": 5000}, headers=auth
        ),
        422,
    )
    assert_error(
        await service.client.get(f"/v1/memories/{uuid.uuid4()}/versions/9", headers=auth), 404
    )


async def test_openapi_and_health(service: Service) -> None:
    spec = (await service.client.get("/openapi.json")).json()
    assert "/v1/cubes/{cube_id}/memories" in spec["paths"]
    assert (await service.client.get("/healthz")).json()["status"] == "ok"
    ready = await service.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "models": "ok"}
    metrics = await service.client.get("/metrics")
    assert "memsvc_http_requests_total" in metrics.text
