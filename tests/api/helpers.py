"""Small helpers shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Service


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is an error in the one wire shape, with this status (and code)."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "detail"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


async def make_cube(svc: Service, name: str = "agent-1", key: str | None = None) -> str:
    resp = await svc.client.post("/v1/cubes", json={"name": name}, headers=svc.auth(key))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def add(
    svc: Service,
    cube_id: str,
    *memories: dict[str, Any],
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    resp = await svc.client.post(
        f"/v1/cubes/{cube_id}/memories",
        json={"memories": list(memories)},
        headers={**svc.auth(key), **(headers or {})},
    )
    assert resp.status_code == 201, resp.text
    return list(resp.json()["items"])


async def new_tenant_key(svc: Service, name: str) -> str:
    t = await svc.client.post("/v1/tenants", json={"name": name}, headers=svc.auth())
    assert t.status_code == 201, t.text
    k = await svc.client.post(
        "/v1/keys", json={"tenant_id": t.json()["id"], "name": "k"}, headers=svc.auth()
    )
    assert k.status_code == 201, k.text
    return str(k.json()["key"])
