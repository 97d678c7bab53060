"""Heuristic mode (no LLM) with the real embedder: notes, links, follows, duplicates."""

from __future__ import annotations

import pytest

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
