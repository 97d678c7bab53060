"""Key roles: the operator (service-wide), tenant admins and members (issue 12, item 4)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from memsvc.errors import Forbidden, NotFound
from memsvc.sdk import AsyncMemoryClient
from tests.api.helpers import add, assert_error, make_cube
from tests.conftest import Service
from tests.web.helpers import page_error, sign_in

pytestmark = pytest.mark.anyio


async def _tenant(svc: Service, name: str) -> str:
    resp = await svc.client.post("/v1/tenants", json={"name": name}, headers=svc.auth())
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def _key(svc: Service, tenant_id: str | None, key: str | None = None, **body: object) -> dict:  # type: ignore[type-arg]
    resp = await svc.client.post(
        "/v1/keys", json={"tenant_id": tenant_id, **body}, headers=svc.auth(key)
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def _two_tenants(svc: Service) -> tuple[str, str, str, str, str, str]:
    """Tenant A (a member key, a cube, a memory) and tenant B with a tenant admin key."""
    a, b = await _tenant(svc, "tenant-a"), await _tenant(svc, "tenant-b")
    a_key = (await _key(svc, a))["key"]
    b_admin = (await _key(svc, b, admin=True))["key"]
    cube = await make_cube(svc, "a-cube", key=a_key)
    [mem] = await add(svc, cube, {"content": "A's private fact"}, key=a_key)
    return a, b, a_key, b_admin, cube, mem["id"]


async def test_a_tenant_admin_of_b_can_create_no_key_in_a_nor_read_a(service: Service) -> None:
    # The reproduction: B's admin key created an admin key in A and read A.
    a, _, _, b_admin, cube, mid = await _two_tenants(service)
    made = await service.client.post(
        "/v1/keys", json={"tenant_id": a, "admin": True}, headers=service.auth(b_admin)
    )
    assert_error(made, 403, "forbidden")
    for role in ("admin", "member", "operator"):
        made = await service.client.post(
            "/v1/keys", json={"tenant_id": a, "role": role}, headers=service.auth(b_admin)
        )
        assert_error(made, 403, "forbidden")
    as_a = {**service.auth(b_admin), "X-Tenant-Id": a}
    assert_error(await service.client.get(f"/v1/memories/{mid}", headers=as_a), 403, "forbidden")
    assert_error(await service.client.get("/v1/keys", headers=as_a), 403, "forbidden")
    assert_error(
        await service.client.get(f"/v1/memories/{mid}", headers=service.auth(b_admin)), 404
    )
    assert_error(
        await service.client.get(f"/v1/cubes/{cube}/memories", headers=service.auth(b_admin)), 404
    )


async def test_a_tenant_admin_manages_its_own_tenant_only(service: Service) -> None:
    a, b, a_key, b_admin, _, _ = await _two_tenants(service)
    auth = service.auth(b_admin)
    assert_error(await service.client.get("/v1/tenants", headers=auth), 403, "forbidden")
    assert_error(
        await service.client.post("/v1/tenants", json={"name": "c"}, headers=auth),
        403,
        "forbidden",
    )
    made = await _key(service, None, b_admin, role="admin")
    assert (made["tenant_id"], made["role"], made["admin"]) == (b, "admin", True)
    own = await _key(service, b, b_admin)
    assert (own["tenant_id"], own["role"], own["admin"]) == (b, "member", False)
    assert_error(
        await service.client.post("/v1/keys", json={"role": "operator"}, headers=auth),
        403,
        "forbidden",
    )
    listed = await service.client.get("/v1/keys", headers=auth)
    assert {k["tenant_id"] for k in listed.json()["items"]} == {b}
    a_keys = await service.client.get("/v1/keys", headers={**service.auth(), "X-Tenant-Id": a})
    a_key_id = a_keys.json()["items"][0]["id"]
    assert_error(await service.client.delete(f"/v1/keys/{a_key_id}", headers=auth), 404)
    # A's key still works.
    assert (await service.client.get("/v1/cubes", headers=service.auth(a_key))).status_code == 200


async def test_a_default_tenant_admin_cannot_touch_the_operator_key(service: Service) -> None:
    admin = (await _key(service, None, role="admin"))["key"]
    keys = (await service.client.get("/v1/keys", headers=service.auth(admin))).json()["items"]
    [operator] = [k for k in keys if k["role"] == "operator"]
    assert_error(
        await service.client.delete(f"/v1/keys/{operator['id']}", headers=service.auth(admin)),
        403,
        "forbidden",
    )
    assert_error(
        await service.client.post(
            "/v1/keys", json={"role": "operator"}, headers=service.auth(admin)
        ),
        403,
    )
    assert_error(await service.client.get("/v1/tenants", headers=service.auth(admin)), 403)


async def test_the_operator_lists_tenants_and_acts_on_one_by_header(service: Service) -> None:
    a, b, _, _, cube, mid = await _two_tenants(service)
    listed = await service.client.get("/v1/tenants", headers=service.auth())
    assert listed.status_code == 200, listed.text
    assert [t["name"] for t in listed.json()["items"]] == ["default", "tenant-a", "tenant-b"]
    as_a = {**service.auth(), "X-Tenant-Id": a}
    got = await service.client.get(f"/v1/memories/{mid}", headers=as_a)
    assert got.json()["content"] == "A's private fact"
    assert_error(await service.client.get(f"/v1/memories/{mid}", headers=service.auth()), 404)
    keys = await service.client.get("/v1/keys", headers=as_a)
    assert {k["tenant_id"] for k in keys.json()["items"]} == {a}
    gone = {**service.auth(), "X-Tenant-Id": str(uuid.uuid4())}
    assert_error(await service.client.get("/v1/cubes", headers=gone), 404, "tenant_not_found")
    bad = {**service.auth(), "X-Tenant-Id": "not-a-uuid"}
    assert_error(await service.client.get("/v1/cubes", headers=bad), 400)
    op2 = await _key(service, b, role="operator")
    assert op2["role"] == "operator"
    assert (
        await service.client.get(
            f"/v1/cubes/{cube}", headers={**service.auth(op2["key"]), "X-Tenant-Id": a}
        )
    ).status_code == 200


async def test_a_member_key_sends_no_tenant_header_and_manages_nothing(service: Service) -> None:
    a, _, a_key, _, _, _ = await _two_tenants(service)
    own = {**service.auth(a_key), "X-Tenant-Id": a}
    # Naming its own tenant is allowed (and changes nothing).
    assert (await service.client.get("/v1/cubes", headers=own)).status_code == 200
    assert_error(await service.client.get("/v1/keys", headers=service.auth(a_key)), 403)


async def test_sdk_role_on_key_creation_and_list_tenants(service: Service) -> None:
    a, b, _, b_admin, _, mid = await _two_tenants(service)
    transport = httpx.ASGITransport(app=service.app)  # type: ignore[arg-type]
    async with AsyncMemoryClient("http://memsvc", b_admin, transport=transport) as c:
        with pytest.raises(Forbidden):
            await c.create_key(role="admin", tenant_id=a)
        with pytest.raises(Forbidden):
            await c.list_tenants()
        with pytest.raises(NotFound):
            await c.get_memory(mid)
        made = await c.create_key(name="helper", role="admin")
        assert (str(made.tenant_id), made.role) == (b, "admin")
    async with AsyncMemoryClient("http://memsvc", service.admin_key, transport=transport) as op:
        page = await op.list_tenants()
        assert [t.name for t in page.items] == ["default", "tenant-a", "tenant-b"]
        made = await op.create_key(role="operator")
        assert made.role == "operator"


async def test_admin_view_shows_tenants_to_the_operator_only(service: Service) -> None:
    _, _, _, b_admin, cube, _ = await _two_tenants(service)
    transport = httpx.ASGITransport(app=service.app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://memsvc") as web:
        await sign_in(web, service.admin_key)
        home = await web.get("/admin/")
        assert 'href="/admin/tenants"' in home.text
        page = await web.get("/admin/tenants")
        assert page.status_code == 200, page.text
        assert "tenant-a" in page.text and "tenant-b" in page.text
    async with httpx.AsyncClient(transport=transport, base_url="http://memsvc") as web:
        await sign_in(web, b_admin)
        home = await web.get("/admin/")
        assert 'href="/admin/tenants"' not in home.text
        page = await web.get("/admin/tenants")
        assert page.status_code == 403
        assert page_error(page)["code"] == "forbidden"
        assert "tenant-a" not in page.text
        other = await web.get(f"/admin/cubes/{cube}")
        assert other.status_code == 404
