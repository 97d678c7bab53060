"""Heuristic mode (no LLM) with the real embedder: notes, links, follows, duplicates."""

from __future__ import annotations

import httpx
import pytest

from memsvc.schemas import MemoryCreate
from memsvc.sdk import AsyncMemoryClient
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import links_of, versions, worker_for

pytestmark = pytest.mark.anyio


async def test_enrichment_makes_an_enrich_version_and_links(service: Service) -> None:
    cube = await make_cube(service)
    a, b, c = await add(
        service,
        cube,
        {"content": "Caroline adopted a golden retriever named Max.", "session_id": "s1"},
        {"content": "Caroline takes her dog Max to the beach every weekend.", "session_id": "s1"},
        {"content": "The quarterly tax report is due on Friday.", "session_id": "s2"},
    )
    assert a["enrichment_status"] == "pending" and a["version"] == 1
    assert await worker_for(service).run_until_idle() == 3

    got = (await service.client.get(f"/v1/memories/{a['id']}", headers=service.auth())).json()
    assert got["enrichment_status"] == "done"
    assert got["content"] == a["content"] and got["version"] == 2
    assert got["keywords"][:2] == ["caroline", "max"]
    assert "caroline" in got["tags"]
    assert got["context"].startswith("Mentions Caroline, Max")
    vers = await versions(service, a["id"])
    assert [v["change_kind"] for v in vers] == ["create", "enrich"]
    enrich = vers[1]
    assert (enrich["actor"], enrich["policy"], enrich["model"]) == (
        "system:enrich",
        "a-mem:heuristic.v1",
        None,
    )
    assert enrich["content"] == a["content"]

    b_links = await links_of(service, b["id"])
    shape = {"id", "source_id", "target_id", "relation", "weight", "reason"}
    assert all(set(ln) == shape | {"created_by", "created_at"} for ln in b_links)
    rel = {(ln["relation"], frozenset((ln["source_id"], ln["target_id"]))) for ln in b_links}
    # Same session: b follows a. Shared entities: same_entity between them.
    assert ("follows", frozenset((b["id"], a["id"]))) in rel
    follows = next(ln for ln in b_links if ln["relation"] == "follows")
    assert (follows["source_id"], follows["target_id"]) == (b["id"], a["id"])
    assert ("same_entity", frozenset((a["id"], b["id"]))) in rel
    assert all(ln["created_by"] == "system:enrich" for ln in b_links)
    # The unrelated memory in another session got a note but no links.
    assert await links_of(service, c["id"]) == []


async def test_near_duplicates_are_linked_as_same_entity(service: Service) -> None:
    cube = await make_cube(service)
    a, _ = await add(
        service,
        cube,
        {"content": "Melanie paints landscapes at the lake on weekends."},
        {"content": "Melanie paints landscapes at the lake on the weekends."},
    )
    await worker_for(service).run_until_idle()
    [link] = await links_of(service, a["id"])
    assert link["relation"] == "same_entity"
    assert link["reason"].startswith("near-duplicate")
    assert link["weight"] >= 0.95


async def test_a_batch_can_skip_enrichment(service: Service) -> None:
    cube = await make_cube(service)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/memories",
        json={
            "memories": [{"content": "Caroline adopted a golden retriever named Max."}],
            "enrich": False,
        },
        headers=service.auth(),
    )
    assert resp.status_code == 201, resp.text
    (imported,) = resp.json()["items"]
    transport = httpx.ASGITransport(app=service.app)  # type: ignore[arg-type]
    async with AsyncMemoryClient("http://memsvc", service.admin_key, transport=transport) as c:
        batch = [MemoryCreate(content="Max the dog loves the beach.")]
        (via_sdk,) = await c.add_many(cube, batch, enrich=False)
        assert via_sdk.enrichment_status == "skipped"
        # Stored and searchable at once, and no enrichment job was queued for either.
        hits = await c.search(cube, "Caroline's golden retriever Max", top_k=5)
        assert {str(r.memory.id) for r in hits.results} == {imported["id"], str(via_sdk.id)}
    assert imported["enrichment_status"] == "skipped"
    assert await worker_for(service).run_until_idle() == 0

    # A memory written later is enriched as usual and may link to the skipped ones.
    (later,) = await add(
        service, cube, {"content": "Caroline walks her golden retriever Max every morning."}
    )
    assert later["enrichment_status"] == "pending"
    assert await worker_for(service).run_until_idle() == 1
    got = await service.client.get(f"/v1/memories/{imported['id']}", headers=service.auth())
    assert got.json()["enrichment_status"] == "skipped" and got.json()["version"] == 1
    linked = {ln["source_id"] for ln in await links_of(service, later["id"])} | {
        ln["target_id"] for ln in await links_of(service, later["id"])
    }
    assert imported["id"] in linked
