"""An edit is rebased over the system's own versions and refused on a real conflict."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import add, assert_error, make_cube
from tests.conftest import Service
from tests.graph.helpers import versions, worker_for

pytestmark = pytest.mark.anyio


async def _patch(svc: Service, memory_id: str, key: str | None = None, **body: Any) -> Any:
    return await svc.client.patch(f"/v1/memories/{memory_id}", json=body, headers=svc.auth(key))


async def _get(svc: Service, memory_id: str) -> dict[str, Any]:
    resp = await svc.client.get(f"/v1/memories/{memory_id}", headers=svc.auth())
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def _key_of_same_tenant(svc: Service) -> str:
    resp = await svc.client.post("/v1/keys", json={"name": "second"}, headers=svc.auth())
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


async def test_edit_made_before_enrichment_is_rebased_over_it(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(
        service, cube, {"content": "Caroline adopted a dog named Max.", "tags": ["pets"]}
    )
    assert await worker_for(service).run_until_idle() == 1
    enriched = await _get(service, mem["id"])
    assert enriched["version"] == 2 and enriched["keywords"] and enriched["context"]

    resp = await _patch(
        service,
        mem["id"],
        expected_version=1,
        content="Caroline adopted a beagle named Max.",
        importance=0.9,
        reason="breed",
    )
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert (got["version"], got["content"], got["importance"]) == (
        3,
        "Caroline adopted a beagle named Max.",
        0.9,
    )
    # What enrichment wrote is still there.
    assert (got["keywords"], got["tags"], got["context"]) == (
        enriched["keywords"],
        enriched["tags"],
        enriched["context"],
    )
    assert got == await _get(service, mem["id"])
    vers = await versions(service, mem["id"])
    assert [(v["version"], v["change_kind"], v["rebased_over"]) for v in vers] == [
        (1, "create", []),
        (2, "enrich", []),
        (3, "update", [2]),
    ]
    assert vers[2]["reason"] == "breed" and vers[2]["tags"] == enriched["tags"]
    prov = (
        await service.client.get(f"/v1/memories/{mem['id']}/provenance", headers=service.auth())
    ).json()
    assert [v["rebased_over"] for v in prov["versions"]] == [[], [], [2]]
    # The edit is searchable under its new words (re-embedded over the latest version).
    found = await service.client.post(
        f"/v1/cubes/{cube}/search", json={"query": "beagle", "top_k": 1}, headers=service.auth()
    )
    assert found.json()["results"][0]["memory"]["id"] == mem["id"]


async def test_current_expected_version_is_not_a_rebase(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Likes tea"})
    resp = await _patch(service, mem["id"], expected_version=1, content="Likes green tea")
    assert resp.status_code == 200, resp.text
    vers = await versions(service, mem["id"])
    assert [(v["change_kind"], v["rebased_over"]) for v in vers] == [
        ("create", []),
        ("update", []),
    ]


async def test_a_version_by_another_key_is_a_conflict(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Bob lives in Berlin."})
    other = await _key_of_same_tenant(service)
    ok = await _patch(service, mem["id"], other, expected_version=1, importance=0.8)
    assert ok.status_code == 200, ok.text
    await worker_for(service).run_until_idle()
    assert (await _get(service, mem["id"]))["version"] == 3  # update by the other key, enrich

    # Disjoint fields, but the change is another writer's: the edit was made without it.
    stale = await _patch(service, mem["id"], expected_version=1, content="Bob lives in Bonn.")
    err = assert_error(stale, 409, "version_conflict")
    assert err["message"].startswith("memory is at version 3, not 1")
    assert err["detail"] == {
        "expected_version": 1,
        "current_version": 3,
        "conflicting_version": 2,
        "change_kind": "update",
        "fields": ["importance"],
    }
    # Expecting the other key's version rebases over the enrichment after it.
    resp = await _patch(service, mem["id"], expected_version=2, content="Bob lives in Bonn.")
    assert resp.status_code == 200, resp.text
    assert (resp.json()["version"], resp.json()["importance"]) == (4, 0.8)
    assert [v["rebased_over"] for v in await versions(service, mem["id"])][-1] == [3]


async def test_same_keys_own_later_version_is_a_conflict(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Likes tea"})
    assert (await _patch(service, mem["id"], expected_version=1, tags=["a"])).status_code == 200
    stale = await _patch(service, mem["id"], expected_version=1, content="Likes juice")
    err = assert_error(stale, 409, "version_conflict")
    assert err["detail"] == {
        "expected_version": 1,
        "current_version": 2,
        "conflicting_version": 2,
        "change_kind": "update",
        "fields": ["tags"],
    }
    assert (await _get(service, mem["id"]))["content"] == "Likes tea"


async def test_a_system_version_touching_a_patched_field_is_a_conflict(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(
        service, cube, {"content": "Caroline moved to Lisbon with Max.", "tags": ["moves"]}
    )
    await worker_for(service).run_until_idle()
    enriched = await _get(service, mem["id"])
    assert enriched["tags"][0] == "moves" and len(enriched["tags"]) > 1  # names added

    # Enrichment changed the tags the edit replaces: the edit would drop them unseen.
    clash = await _patch(service, mem["id"], expected_version=1, tags=["moves", "portugal"])
    err = assert_error(clash, 409, "version_conflict")
    assert err["message"] == (
        "memory is at version 2, not 1: version 2 (enrich) changed tags, which this edit sets"
    )
    assert err["detail"] == {
        "expected_version": 1,
        "current_version": 2,
        "conflicting_version": 2,
        "change_kind": "enrich",
        "fields": ["tags"],
    }
    assert await _get(service, mem["id"]) == enriched
    # Made against the enriched version, the same edit goes through.
    ok = await _patch(service, mem["id"], expected_version=2, tags=["moves", "portugal"])
    assert ok.status_code == 200 and ok.json()["tags"] == ["moves", "portugal"]


async def test_expected_version_beyond_the_latest_is_a_conflict(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Likes tea"})
    await worker_for(service).run_until_idle()
    ahead = await _patch(service, mem["id"], expected_version=7, content="Likes coffee")
    err = assert_error(ahead, 409, "version_conflict")
    assert err["message"] == "memory is at version 2, not 7"
    assert err["detail"] == {"expected_version": 7, "current_version": 2}
    assert (await _get(service, mem["id"]))["content"] == "Likes tea"


async def test_a_delete_after_the_expected_version_is_a_conflict(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Likes tea"})
    gone = await service.client.delete(f"/v1/memories/{mem['id']}", headers=service.auth())
    assert gone.status_code == 204
    stale = await _patch(service, mem["id"], expected_version=1, content="Likes coffee")
    err = assert_error(stale, 409, "version_conflict")
    assert err["detail"]["conflicting_version"] == 2
    assert err["detail"]["change_kind"] == "delete"
    assert err["detail"]["fields"] == ["status"]
