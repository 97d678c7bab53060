"""Memories through the real app: versions, provenance, delete/restore/erase, idempotency."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import create_engine, text

from tests.api.helpers import add, assert_error, make_cube
from tests.conftest import Service

pytestmark = pytest.mark.anyio


async def test_create_then_search_finds_it(service: Service) -> None:
    cube = await make_cube(service)
    await add(
        service,
        cube,
        {"content": "Caroline adopted a golden retriever named Max", "tags": ["pets"]},
        {"content": "The quarterly report is due on Friday", "kind": "event"},
        {"content": "Melanie paints landscapes at the lake on weekends"},
    )
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": "What dog does Caroline have?", "top_k": 3},
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert results[0]["memory"]["content"] == ("Caroline adopted a golden retriever named Max")
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]


async def test_created_memory_has_the_documented_shape(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(
        service,
        cube,
        {
            "content": "Prefers window seats",
            "kind": "preference",
            "layer": "core",
            "tags": ["travel"],
            "metadata": {"confidence": 0.9},
            "user_id": "u1",
            "sources": [
                {
                    "kind": "message",
                    "external_id": "D1:3",
                    "speaker": "Ann",
                    "occurred_at": "2023-05-08T13:56:00Z",
                    "text": "I always take the window",
                }
            ],
        },
    )
    assert mem["cube_id"] == cube
    assert (mem["version"], mem["status"], mem["kind"], mem["layer"]) == (
        1,
        "active",
        "preference",
        "core",
    )
    assert mem["tags"] == ["travel"] and mem["metadata"] == {"confidence": 0.9}
    assert [s["external_id"] for s in mem["sources"]] == ["D1:3"]
    got = await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())
    assert got.status_code == 200
    assert got.json()["sources"][0]["speaker"] == "Ann"
    assert got.json()["content"] == "Prefers window seats"


async def test_update_appends_a_version_and_keeps_the_old_one(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Lives in Berlin"})
    resp = await service.client.patch(
        f"/v1/memories/{mem['id']}",
        json={"content": "Lives in Lisbon", "expected_version": 1, "reason": "moved"},
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["version"], resp.json()["content"]) == (2, "Lives in Lisbon")
    v1 = await service.client.get(f"/v1/memories/{mem['id']}/versions/1", headers=service.auth())
    assert v1.json()["content"] == "Lives in Berlin" and v1.json()["change_kind"] == "create"
    hist = await service.client.get(f"/v1/memories/{mem['id']}/versions", headers=service.auth())
    assert [(v["version"], v["change_kind"], v["content"]) for v in hist.json()["items"]] == [
        (1, "create", "Lives in Berlin"),
        (2, "update", "Lives in Lisbon"),
    ]
    assert hist.json()["items"][1]["reason"] == "moved"
    assert hist.json()["items"][0]["embedding_hash"] != hist.json()["items"][1]["embedding_hash"]
    found = await service.client.post(
        f"/v1/cubes/{cube}/search", json={"query": "Lisbon", "top_k": 1}, headers=service.auth()
    )
    assert found.json()["results"][0]["memory"]["content"] == "Lives in Lisbon"


async def test_stale_update_is_409_and_changes_nothing(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Likes tea"})
    ok = await service.client.patch(
        f"/v1/memories/{mem['id']}",
        json={"content": "Likes coffee", "expected_version": 1},
        headers=service.auth(),
    )
    assert ok.status_code == 200
    stale = await service.client.patch(
        f"/v1/memories/{mem['id']}",
        json={"content": "Likes juice", "expected_version": 1},
        headers=service.auth(),
    )
    err = assert_error(stale, 409, "version_conflict")
    assert err["detail"] == {
        "expected_version": 1,
        "current_version": 2,
        "conflicting_version": 2,
        "change_kind": "update",
        "fields": ["content"],
    }
    now = (await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())).json()
    assert (now["version"], now["content"]) == (2, "Likes coffee")


async def test_concurrent_patches_with_same_version_exactly_one_wins(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Counter"})

    async def patch(i: int) -> int:
        r = await service.client.patch(
            f"/v1/memories/{mem['id']}",
            json={"metadata": {"writer": i}, "expected_version": 1},
            headers=service.auth(),
        )
        return r.status_code

    codes = await asyncio.gather(*(patch(i) for i in range(6)))
    assert sorted(codes) == [200, 409, 409, 409, 409, 409]
    hist = await service.client.get(f"/v1/memories/{mem['id']}/versions", headers=service.auth())
    assert [v["version"] for v in hist.json()["items"]] == [1, 2]


async def test_soft_delete_hides_and_restore_brings_back(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Allergic to peanuts"})
    mid = mem["id"]
    assert (
        await service.client.delete(f"/v1/memories/{mid}", headers=service.auth())
    ).status_code == 204
    listed = await service.client.get(f"/v1/cubes/{cube}/memories", headers=service.auth())
    assert listed.json()["items"] == []
    with_deleted = await service.client.get(
        f"/v1/cubes/{cube}/memories", params={"include_deleted": "true"}, headers=service.auth()
    )
    assert [(m["id"], m["status"]) for m in with_deleted.json()["items"]] == [(mid, "deleted")]
    s = await service.client.post(
        f"/v1/cubes/{cube}/search", json={"query": "peanuts allergy"}, headers=service.auth()
    )
    assert s.json()["results"] == []
    restored = await service.client.post(f"/v1/memories/{mid}/restore", headers=service.auth())
    assert (restored.json()["status"], restored.json()["version"]) == ("active", 3)
    s = await service.client.post(
        f"/v1/cubes/{cube}/search", json={"query": "peanuts allergy"}, headers=service.auth()
    )
    assert [r["memory"]["id"] for r in s.json()["results"]] == [mid]
    hist = await service.client.get(f"/v1/memories/{mid}/versions", headers=service.auth())
    assert [v["change_kind"] for v in hist.json()["items"]] == ["create", "delete", "restore"]


async def test_hard_delete_erases_every_version_and_keeps_an_audit_row(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service)
    [mem] = await add(
        service,
        cube,
        {"content": "SSN is 123-45-6789", "sources": [{"text": "my ssn is 123-45-6789"}]},
    )
    mid = mem["id"]
    await service.client.patch(
        f"/v1/memories/{mid}",
        json={"content": "SSN is 123-45-6780", "expected_version": 1},
        headers=service.auth(),
    )
    resp = await service.client.delete(
        f"/v1/memories/{mid}", params={"hard": "true"}, headers=service.auth()
    )
    assert resp.status_code == 204
    assert_error(await service.client.get(f"/v1/memories/{mid}", headers=service.auth()), 404)
    assert_error(
        await service.client.get(f"/v1/memories/{mid}/versions/1", headers=service.auth()), 404
    )
    engine = create_engine(database_url)
    with engine.connect() as conn:
        leftovers = conn.execute(
            text(
                "SELECT count(*) FROM memory_version WHERE memory_id = :m "
                "AND (content <> '' OR embedding_hash IS NOT NULL)"
            ),
            {"m": mid},
        ).scalar()
        mem_row = conn.execute(
            text("SELECT content, embedding, index_text FROM memory WHERE id = :m"), {"m": mid}
        ).one()
        src_text = conn.execute(
            text(
                "SELECT s.text FROM source s JOIN memory_source ms ON ms.source_id = s.id "
                "WHERE ms.memory_id = :m"
            ),
            {"m": mid},
        ).scalar()
        audit = (
            conn.execute(text("SELECT action FROM audit_log WHERE target_id = :m"), {"m": mid})
            .scalars()
            .all()
        )
        hits = conn.execute(
            text("SELECT count(*) FROM memory WHERE tsv @@ to_tsquery('english', '6789')")
        ).scalar()
    engine.dispose()
    assert leftovers == 0
    assert tuple(mem_row) == ("", None, "")
    assert src_text is None
    assert audit == ["memory.erase"]
    assert hits == 0


async def test_provenance_names_sources_and_actor(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(
        service,
        cube,
        {
            "content": "Ann went hiking",
            "sources": [
                {"external_id": "D2:1", "speaker": "Ann", "text": "Went hiking today!"},
                {"external_id": "D2:2", "speaker": "Bob", "text": "Where?"},
            ],
        },
    )
    await service.client.patch(
        f"/v1/memories/{mem['id']}",
        json={"tags": ["outdoors"], "expected_version": 1},
        headers=service.auth(),
    )
    prov = await service.client.get(f"/v1/memories/{mem['id']}/provenance", headers=service.auth())
    assert prov.status_code == 200
    body = prov.json()
    assert body["memory_id"] == mem["id"]
    v1, v2 = body["versions"]
    assert (v1["version"], v1["change_kind"], v1["policy"]) == (1, "create", "explicit")
    assert v1["actor"].startswith("key:")
    assert sorted(s["external_id"] for s in v1["sources"]) == ["D2:1", "D2:2"]
    assert (v2["version"], v2["change_kind"], v2["sources"]) == (2, "update", [])


async def test_idempotent_retry_creates_nothing_twice(service: Service, database_url: str) -> None:
    cube = await make_cube(service)
    body = {"memories": [{"content": "Paid invoice 42"}, {"content": "Paid invoice 43"}]}
    hdr = {**service.auth(), "Idempotency-Key": "req-1"}
    first = await service.client.post(f"/v1/cubes/{cube}/memories", json=body, headers=hdr)
    again = await service.client.post(f"/v1/cubes/{cube}/memories", json=body, headers=hdr)
    assert first.status_code == again.status_code == 201
    assert [m["id"] for m in again.json()["items"]] == [m["id"] for m in first.json()["items"]]
    listed = await service.client.get(f"/v1/cubes/{cube}/memories", headers=service.auth())
    assert len(listed.json()["items"]) == 2
    other = {"memories": [{"content": "something else"}]}
    clash = await service.client.post(f"/v1/cubes/{cube}/memories", json=other, headers=hdr)
    assert_error(clash, 409, "idempotency_mismatch")


async def test_concurrent_retries_with_one_key_write_once(service: Service) -> None:
    cube = await make_cube(service)
    body = {"memories": [{"content": "Booked flight LH123"}]}
    hdr = {**service.auth(), "Idempotency-Key": "same"}
    resps = await asyncio.gather(
        *(
            service.client.post(f"/v1/cubes/{cube}/memories", json=body, headers=hdr)
            for _ in range(4)
        )
    )
    assert {r.status_code for r in resps} == {201}
    assert len({r.json()["items"][0]["id"] for r in resps}) == 1
    listed = await service.client.get(f"/v1/cubes/{cube}/memories", headers=service.auth())
    assert len(listed.json()["items"]) == 1


async def test_list_pages_through_everything_with_filters(service: Service) -> None:
    cube = await make_cube(service)
    mems = [
        {
            "content": f"note {i}",
            "kind": "event" if i % 2 else "fact",
            "tags": [f"t{i % 3}"],
            "user_id": "u1" if i < 10 else "u2",
        }
        for i in range(25)
    ]
    created = await add(service, cube, *mems)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (
            await service.client.get(
                f"/v1/cubes/{cube}/memories", params=params, headers=service.auth()
            )
        ).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [m["id"] for m in created]
    events = await service.client.get(
        f"/v1/cubes/{cube}/memories",
        params={"kind": "event", "user_id": "u1", "tag": ["t0", "t1"]},
        headers=service.auth(),
    )
    expected = [f"note {i}" for i in range(25) if i % 2 and i < 10 and i % 3 in (0, 1)]
    assert [m["content"] for m in events.json()["items"]] == expected


async def test_search_filters_and_explain(service: Service) -> None:
    cube = await make_cube(service)
    await add(
        service,
        cube,
        {"content": "Jon plays guitar in a band", "user_id": "jon", "tags": ["music"]},
        {"content": "Gina plays guitar at home", "user_id": "gina", "tags": ["music"]},
    )
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": "who plays guitar", "filters": {"user_id": "gina"}, "explain": True},
        headers=service.auth(),
    )
    results = resp.json()["results"]
    assert [r["memory"]["user_id"] for r in results] == ["gina"]
    assert set(results[0]["explain"]) == {"vector", "fulltext"}
    assert results[0]["explain"]["vector"]["rank"] == 1


async def test_batch_keeps_request_order_whatever_the_lengths(service: Service) -> None:
    # The write path embeds longest-first; answers and listing must keep the request order.
    cube = await make_cube(service)
    contents = [f"m{i} " + "word " * ((i * 37) % 50) for i in range(150)]
    created = await add(service, cube, *({"content": c} for c in contents))
    assert [m["content"] for m in created] == contents
    stamps = [m["created_at"] for m in created]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    listed = await service.client.get(
        f"/v1/cubes/{cube}/memories", params={"limit": 200}, headers=service.auth()
    )
    assert [m["content"] for m in listed.json()["items"]] == contents
    # Each memory got its own embedding (a mix-up across chunks would show here).
    for c in (contents[3], contents[77], contents[149]):
        body = (
            await service.client.post(
                f"/v1/cubes/{cube}/search",
                json={"query": c, "preset": "fast", "top_k": 1},
                headers=service.auth(),
            )
        ).json()
        assert body["results"][0]["memory"]["content"] == c
