"""Hostile input (issue 12, items 1, 2, 5, 6): every one a 4xx in the error shape, never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.api.helpers import add, assert_error, make_cube
from tests.conftest import Service

pytestmark = pytest.mark.anyio


def forged(at: str, row_id: Any) -> str:
    raw = json.dumps([at, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def post_memory(svc: Service, cube: str, memory: dict[str, Any]) -> Any:
    # json.dumps escapes lone surrogates (httpx's encoder would refuse to send them).
    return await svc.client.post(
        f"/v1/cubes/{cube}/memories",
        content=json.dumps({"memories": [memory]}),
        headers={**svc.auth(), "content-type": "application/json"},
    )


@pytest.mark.parametrize(
    "memory",
    [
        {"content": "x", "valid_from": "0001-01-01T00:00:00+14:00"},
        {"content": "x", "valid_to": "9999-12-31T23:00:00-14:00"},
        {"content": "x", "valid_to": "9999-12-31T00:00:00Z"},
        {"content": "x", "sources": [{"text": "t", "occurred_at": "0001-01-01T05:00:00+06:00"}]},
        {"content": "x", "valid_from": "0001-01-01T00:00:00"},
    ],
)
async def test_dates_outside_the_storable_range_are_422(
    service: Service, memory: dict[str, Any]
) -> None:
    cube = await make_cube(service)
    assert_error(await post_memory(service, cube, memory), 422, "validation_error")
    # Nothing was stored, and the cube still lists.
    resp = await service.client.get(f"/v1/cubes/{cube}/memories", headers=service.auth())
    assert resp.status_code == 200 and resp.json()["items"] == []


async def test_dates_are_normalised_to_utc(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "x", "valid_from": "2024-01-01T10:00:00+02:00"})
    assert mem["valid_from"].startswith("2024-01-01T08:00:00")


async def test_time_filters_outside_the_range_are_422(service: Service) -> None:
    cube = await make_cube(service)
    for param in ("created_after", "created_before"):
        resp = await service.client.get(
            f"/v1/cubes/{cube}/memories",
            params={param: "0001-01-01T00:00:00+14:00"},
            headers=service.auth(),
        )
        assert_error(resp, 422)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": "q", "as_of": "9999-12-31T23:59:59-14:00"},
        headers=service.auth(),
    )
    assert_error(resp, 422)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": "q", "filters": {"created_after": "0001-01-01T00:00:00+14:00"}},
        headers=service.auth(),
    )
    assert_error(resp, 422)


@pytest.mark.parametrize(
    "cursor",
    [
        forged("2024-01-01T00:00:00+00:00", "not-a-uuid"),
        forged("2024-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"),
        forged("0001-01-01T00:00:00+14:00", "00000000-0000-0000-0000-000000000000"),
        forged("2024-01-01T00:00:00+00:00", 99999999999999999999999),
        forged("2024-01-01T00:00:00+00:00", [1]),
        "!!!!",
    ],
)
async def test_forged_cursors_are_400(service: Service, cursor: str) -> None:
    cube = await make_cube(service)
    for path in (f"/v1/cubes/{cube}/memories", "/v1/jobs?status=queued", "/v1/cubes"):
        sep = "&" if "?" in path else "?"
        resp = await service.client.get(f"{path}{sep}cursor={cursor}", headers=service.auth())
        assert_error(resp, 400, "invalid_cursor")


async def test_forged_job_cursor_with_a_huge_id_is_400(service: Service) -> None:
    cursor = forged("2024-01-01T00:00:00+00:00", "9223372036854775808")
    resp = await service.client.get(
        f"/v1/jobs?status=queued&cursor={cursor}", headers=service.auth()
    )
    assert_error(resp, 400, "invalid_cursor")


BAD_MEMORIES = [
    {"content": "a\u0000b"},
    {"content": "x", "tags": ["a\u0000"]},
    {"content": "x", "tags": ["\udc00"]},
    {"content": "x", "metadata": {"k": "v\u0000"}},
    {"content": "x", "metadata": {"k\u0000": 1}},
    {"content": "x", "metadata": {"\udc00": 1}},
    {"content": "x", "metadata": {"k": ["\udc00"]}},
    {"content": "x", "sources": [{"text": "a\u0000"}]},
    {"content": "x", "sources": [{"text": "t", "metadata": {"x": "\udc00"}}]},
    {"content": "x", "tags": ["t" * 3000]},
    {"content": "x", "tags": [" ".join(f"w{i}" for i in range(200_000))]},
    {"content": "x", "tags": [f"t{i}" for i in range(65)]},
    {"content": "x", "importance": 2},
]


@pytest.mark.parametrize("memory", BAD_MEMORIES)
async def test_unstorable_values_are_4xx(service: Service, memory: dict[str, Any]) -> None:
    cube = await make_cube(service)
    resp = await post_memory(service, cube, memory)
    assert 400 <= resp.status_code < 500, resp.text
    assert_error(resp, resp.status_code)


async def _raw_post(svc: Service, path: str, body: str) -> Any:
    return await svc.client.post(
        path, content=body, headers={**svc.auth(), "content-type": "application/json"}
    )


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_numbers_are_422(service: Service, number: str) -> None:
    cube = await make_cube(service)
    body = '{"memories": [{"content": "x", "metadata": {"n": NUMBER}}]}'.replace("NUMBER", number)
    assert_error(await _raw_post(service, f"/v1/cubes/{cube}/memories", body), 422)
    body = '{"query": "x", "config": {"vector": {"weight": NUMBER}}}'.replace("NUMBER", number)
    assert_error(await _raw_post(service, f"/v1/cubes/{cube}/search", body), 422)


async def test_deep_nesting_is_422(service: Service) -> None:
    cube = await make_cube(service)
    deep: Any = "leaf"
    for _ in range(500):
        deep = {"k": deep}
    resp = await post_memory(service, cube, {"content": "x", "metadata": deep})
    assert_error(resp, 422)
    shallow: Any = "leaf"
    for _ in range(20):
        shallow = {"k": shallow}
    await add(service, cube, {"content": "x", "metadata": shallow})


async def test_nul_in_names_queries_and_parameters_is_422(service: Service) -> None:
    cube = await make_cube(service)
    resp = await service.client.post("/v1/cubes", json={"name": "a\u0000b"}, headers=service.auth())
    assert_error(resp, 422)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search", json={"query": "a\u0000"}, headers=service.auth()
    )
    assert_error(resp, 422)
    for params in ({"kind": "a\u0000"}, {"tag": "\u0000"}, {"user_id": "u\u0000"}):
        resp = await service.client.get(
            f"/v1/cubes/{cube}/memories", params=params, headers=service.auth()
        )
        assert_error(resp, 422)
    resp = await service.client.get("/v1/cubes/a%00b/memories", headers=service.auth())
    assert_error(resp, 422)
    resp = await service.client.get("/admin/memories?q=%00", follow_redirects=False)
    assert 400 <= resp.status_code < 500 or resp.status_code in (200, 303), resp.text


async def test_integers_past_the_column_types_are_422(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "x"})
    resp = await service.client.patch(
        f"/v1/memories/{mem['id']}",
        json={"expected_version": 2147483648, "content": "y"},
        headers=service.auth(),
    )
    assert_error(resp, 422)
    resp = await service.client.get(
        f"/v1/memories/{mem['id']}/versions/2147483648", headers=service.auth()
    )
    assert_error(resp, 422)
    for path in ("/v1/jobs/9223372036854775808", "/v1/jobs/99999999999999999999999"):
        assert_error(await service.client.get(path, headers=service.auth()), 422)
        assert_error(await service.client.post(f"{path}/retry", headers=service.auth()), 422)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": "x", "top_k": 9223372036854775808},
        headers=service.auth(),
    )
    assert_error(resp, 422)


@pytest.mark.parametrize("field", ["content", "layer", "tags", "kind", "importance", "metadata"])
async def test_patch_refuses_null_for_non_nullable_fields(service: Service, field: str) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "x"})
    resp = await service.client.patch(
        f"/v1/memories/{mem['id']}",
        json={"expected_version": 1, field: None},
        headers=service.auth(),
    )
    assert_error(resp, 422)
    got = await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())
    assert got.status_code == 200 and got.json()["version"] == 1


async def test_patch_checks_the_merged_memory_like_create(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "x", "valid_from": "2024-06-01T00:00:00Z"})
    url = f"/v1/memories/{mem['id']}"
    # valid_to before the stored valid_from.
    resp = await service.client.patch(
        url,
        json={"expected_version": 1, "valid_to": "2024-01-01T00:00:00Z"},
        headers=service.auth(),
    )
    assert_error(resp, 422)
    # Both in the edit, reversed.
    resp = await service.client.patch(
        url,
        json={
            "expected_version": 1,
            "valid_from": "2024-06-01T00:00:00Z",
            "valid_to": "2024-01-01T00:00:00Z",
        },
        headers=service.auth(),
    )
    assert_error(resp, 422)
    resp = await service.client.patch(
        url, json={"expected_version": 1, "content": "   \n\t "}, headers=service.auth()
    )
    assert_error(resp, 422)
    # Clearing valid_from makes any valid_to fine; a later valid_to passes.
    resp = await service.client.patch(
        url,
        json={"expected_version": 1, "valid_to": "2025-01-01T00:00:00Z"},
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text


async def test_field_limits_are_422_and_bodies_413(service: Service) -> None:
    cube = await make_cube(service)
    big_text = "a" * (1024 * 1024 + 1)
    resp = await post_memory(service, cube, {"content": "x", "sources": [{"text": big_text}]})
    assert_error(resp, 422, "field_too_large")
    resp = await post_memory(service, cube, {"content": "x", "metadata": {"k": "b" * 70_000}})
    assert_error(resp, 422, "field_too_large")
    [mem] = await add(service, cube, {"content": "x"})
    resp = await service.client.patch(
        f"/v1/memories/{mem['id']}",
        json={"expected_version": 1, "metadata": {"k": "b" * 70_000}},
        headers=service.auth(),
    )
    assert_error(resp, 422, "field_too_large")
