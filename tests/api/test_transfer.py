"""Cube export / import over the real app: exact round trips, hostile lines, isolation."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.api.helpers import add, assert_error, make_cube, new_tenant_key
from tests.conftest import Service
from tests.graph.helpers import worker_for

pytestmark = pytest.mark.anyio
NDJSON = {"Content-Type": "application/x-ndjson"}


async def export(svc: Service, cube: str, key: str | None = None) -> list[dict[str, Any]]:
    resp = await svc.client.get(f"/v1/cubes/{cube}/export", headers=svc.auth(key))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in resp.text.splitlines()]


async def send(svc: Service, cube: str, body: bytes, key: str | None = None) -> Any:
    return await svc.client.post(
        f"/v1/cubes/{cube}/import", content=body, headers={**svc.auth(key), **NDJSON}
    )


def lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


async def populated_cube(svc: Service) -> str:
    """A cube with sources, enrichment versions, links, an edit, a tombstone, a manual link."""
    cube = await make_cube(svc, "source-cube")
    a, b, c = await add(
        svc,
        cube,
        {
            "content": "Caroline moved to Berlin in 2022.",
            "tags": ["home"],
            "sources": [{"speaker": "Caroline", "text": "I moved to Berlin!"}],
        },
        {"content": "Caroline adopted a dog named Max.", "metadata": {"n": 2}},
        {"content": "Melanie paints landscapes.", "layer": "core", "user_id": "u1"},
    )
    [erased] = await add(svc, cube, {"content": "My card number is 1234."})
    resp = await svc.client.delete(f"/v1/memories/{erased['id']}?hard=true", headers=svc.auth())
    assert resp.status_code == 204
    await worker_for(svc).run_until_idle()
    cur = (await svc.client.get(f"/v1/memories/{a['id']}", headers=svc.auth())).json()
    resp = await svc.client.patch(
        f"/v1/memories/{a['id']}",
        json={"content": "Caroline lives in Munich.", "expected_version": cur["version"]},
        headers=svc.auth(),
    )
    assert resp.status_code == 200, resp.text
    assert (
        await svc.client.delete(f"/v1/memories/{c['id']}", headers=svc.auth())
    ).status_code == 204
    resp = await svc.client.post(
        "/v1/links",
        json={"source_id": c["id"], "target_id": b["id"], "relation": "related", "reason": "why"},
        headers=svc.auth(),
    )
    assert resp.status_code == 201, resp.text
    return cube


async def test_round_trip_into_a_new_cube_reproduces_it(service: Service) -> None:
    cube = await populated_cube(service)
    first = await export(service, cube)
    types = [r["type"] for r in first]
    assert types[0] == "header" and types[-1] == "end"
    assert types.count("memory") == 3 and types.count("source") == 1
    assert "card number" not in json.dumps(first)  # an erased memory is not exported
    assert types.count("link") >= 1
    assert first[-1]["counts"]["memories"] == 3
    versions = {r["content"]: len(r["versions"]) for r in first if r["type"] == "memory"}
    assert versions["Caroline lives in Munich."] >= 3  # create, enrich, update

    target = await make_cube(service, "target-cube")
    resp = await send(service, target, lines(first))
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["created"] == {
        "sources": 1,
        "memories": 3,
        "versions": sum(versions.values()),
        "links": types.count("link"),
    }
    assert result["skipped"] == {"sources": 0, "memories": 0, "versions": 0, "links": 0}

    second = await export(service, target)
    ns = uuid.UUID(target)

    def mapped(old: str) -> str:
        return str(uuid.uuid5(ns, old))

    for old, new in zip(first, second, strict=True):
        assert old["type"] == new["type"]
        if old["type"] in {"source", "memory", "link"}:
            assert new["id"] == mapped(old["id"])
        if old["type"] == "link":
            assert (new["source_id"], new["target_id"]) == (
                mapped(old["source_id"]),
                mapped(old["target_id"]),
            )
            old = {**old, "source_id": new["source_id"], "target_id": new["target_id"]}
        if old["type"] == "memory":
            assert new["cube_id"] == target
            for v_old, v_new in zip(old["versions"], new["versions"], strict=True):
                assert v_new["imported_from"] == {
                    "system": "memsvc",
                    "cube_id": cube,
                    "memory_id": old["id"],
                    "version": v_old["version"],
                }
                assert v_new["sources"] == [mapped(s) for s in v_old["sources"]]
                assert v_new["caused_by"] == (
                    mapped(v_old["caused_by"]) if v_old["caused_by"] else None
                )
                v_old.update(
                    imported_from=v_new["imported_from"],
                    sources=v_new["sources"],
                    caused_by=v_new["caused_by"],
                )
            old = {**old, "cube_id": target}
        if old["type"] == "header":
            assert new["cube"]["name"] == "target-cube"
            continue
        if "id" in old:
            old = {**old, "id": new["id"]}
        assert old == new

    # The REST reads say the same: provenance names where each version came from.
    moved = next(r for r in first if r.get("content") == "Caroline lives in Munich.")
    a_new = mapped(moved["id"])
    prov = await service.client.get(f"/v1/memories/{a_new}/provenance", headers=service.auth())
    assert prov.status_code == 200
    assert all(v["imported_from"]["cube_id"] == cube for v in prov.json()["versions"])
    # And it is searchable at once (embeddings came along).
    hits = await service.client.post(
        f"/v1/cubes/{target}/search",
        json={"query": "where does Caroline live"},
        headers=service.auth(),
    )
    assert hits.json()["results"][0]["memory"]["content"] == "Caroline lives in Munich."


async def test_resending_lines_writes_nothing_twice(service: Service) -> None:
    cube = await populated_cube(service)
    records = await export(service, cube)
    target = await make_cube(service, "target")
    half = len(records) // 2
    assert (await send(service, target, lines(records[: half + 1]))).status_code == 200
    resp = await send(service, target, lines(records))
    assert resp.status_code == 200, resp.text
    assert sum(resp.json()["skipped"].values()) > 0
    again = await send(service, target, lines(records))
    assert sum(again.json()["created"].values()) == 0
    got = await export(service, target)
    assert [r["type"] for r in got] == [r["type"] for r in records]


async def test_bad_line_in_the_middle_names_it_and_writes_nothing(service: Service) -> None:
    cube = await populated_cube(service)
    records = await export(service, cube)
    target = await make_cube(service, "target")
    good = lines(records).split(b"\n")
    bodies = {
        "invalid_json": b"{not json",
        "validation_error": json.dumps({"type": "memory", "id": "x"}).encode(),
    }
    for code, bad in bodies.items():
        body = b"\n".join([*good[:3], bad, *good[3:]])
        err = assert_error(
            await send(service, target, body), 400 if code == "invalid_json" else 422, code
        )
        assert err["detail"]["line"] == 4
    assert [r["type"] for r in await export(service, target)] == ["header", "end"]


HOSTILE: list[tuple[bytes, int, str | None]] = [
    (
        b'{"type": "source", "id": "s", "text": "a\\u0000b", "created_at": "2024-01-01T00:00:00Z"}',
        422,
        None,
    ),
    (
        b'{"type": "source", "id": "s", "text": "\\ud800", "created_at": "2024-01-01T00:00:00Z"}',
        422,
        None,
    ),
    (
        b'{"type": "source", "id": "s", "text": "x", "created_at": "2024-01-01T00:00:00Z"}\xff\xfe',
        400,
        "invalid_json",
    ),
    (
        b'{"type": "link", "id": "l", "source_id": "a", "target_id": "b", "relation": "r",'
        b' "weight": NaN, "created_by": "k", "created_at": "2024-01-01T00:00:00Z"}',
        400,
        "invalid_json",
    ),
    (b'{"type": "end", "counts": {"memories": ' + b"9" * 5000 + b"}}", 400, "invalid_json"),
    (b'{"type": "end", "counts": {"memories": ' + b"9" * 40 + b"}}", 200, None),
    (
        b'{"type": "link", "id": "l", "source_id": "a", "target_id": "b", "relation": "r",'
        b' "weight": 1e999, "created_by": "k", "created_at": "2024-01-01T00:00:00Z"}',
        422,
        None,
    ),
    (
        b'{"type": "link", "id": "l", "source_id": "nope", "target_id": "nope2", "relation": "r",'
        b' "created_by": "k", "created_at": "2024-01-01T00:00:00Z"}',
        422,
        "unknown_reference",
    ),
    (b"[" * 100000 + b"]" * 100000, 400, "invalid_json"),
    (
        b'{"type": "source", "id": "s", "text": "'
        + b"x" * (9 * 1024 * 1024)
        + b'", "created_at": "2024-01-01T00:00:00Z"}',
        413,
        "line_too_large",
    ),
    (
        b'{"type": "memory", "id": "m", "content": "x", "version": 99999999999,'
        b' "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",'
        b' "versions": []}',
        422,
        None,
    ),
]


@pytest.mark.parametrize(("body", "status", "code"), HOSTILE)
async def test_hostile_lines_are_refused_in_the_error_shape(
    service: Service, body: bytes, status: int, code: str | None
) -> None:
    target = await make_cube(service, "target")
    resp = await send(service, target, body)
    if status == 200:
        assert resp.status_code == 200, resp.text
        return
    err = assert_error(resp, status, code)
    assert err["detail"]["line"] == 1
    assert [r["type"] for r in await export(service, target)] == ["header", "end"]


async def test_another_tenants_cube_is_a_404_both_ways(service: Service) -> None:
    cube = await populated_cube(service)
    records = await export(service, cube)
    other = await new_tenant_key(service, "tenant-b")
    assert_error(
        await service.client.get(f"/v1/cubes/{cube}/export", headers=service.auth(other)), 404
    )
    assert_error(await send(service, cube, lines(records), key=other), 404)
    # Its own cube takes the records, and they stay its own.
    mine = await make_cube(service, "b-cube", key=other)
    assert (await send(service, mine, lines(records), key=other)).status_code == 200
    assert len(await export(service, mine, key=other)) == len(records)
    assert len(await export(service, cube)) == len(records)
