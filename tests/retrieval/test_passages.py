"""Long memories are embedded as passages too: the vector channel sees all of them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memsvc.store import indexing
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import sql

FILLER = (
    "We talked about the quarterly planning cycle, the budget spreadsheet and the hiring "
    "pipeline for the platform team, and then about office logistics and the parking rota. "
)


def test_only_long_contents_get_passages_covering_their_tail() -> None:
    assert indexing.passages("short text " * 50) == []
    words = [f"w{i}" for i in range(500)]
    got = indexing.passages(" ".join(words), ["Ann", None, "Ann"])
    assert all(p.startswith("Ann: ") for p in got)
    assert got[0].split()[1] == "w120" and got[-1].split()[-1] == "w499"
    # Windows overlap, so a sentence cut at one edge is whole in the next.
    assert len(got) == 3 and got[1].split()[1] == "w240"
    assert len(indexing.passages("x " * 100_000)) == indexing.MAX_PASSAGES


def long_message(fact: str) -> str:
    return FILLER * 12 + fact + " " + FILLER * 2


async def fast(svc: Service, cube: str, query: str) -> list[dict[str, Any]]:
    resp = await svc.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": query, "preset": "fast", "top_k": 10, "explain": True},
        headers=svc.auth(),
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json()["results"])


@pytest.mark.anyio
async def test_a_fact_deep_in_a_long_message_is_found_by_the_vector_channel(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service, "long")
    fact = "My sister Priya adopted a three-legged greyhound called Biscuit last spring."
    long, *_ = await add(
        service,
        cube,
        {"content": long_message(fact), "sources": [{"speaker": "user"}]},
        {"content": FILLER * 3},
        {"content": "The dog park near the office opens at seven."},
        {"content": "Priya's favourite film is a documentary about whales."},
    )
    assert long["content"] == long_message(fact)  # stored as sent
    assert long["content"].split().index("Priya") > 300  # past the embedder's window
    n = sql(database_url, "SELECT count(*) FROM memory_passage WHERE memory_id = :m", m=long["id"])
    assert n[0][0] == len(indexing.passages(long["content"])) == 2
    query = "Which greyhound did my sister adopt?"

    def score_of(hits: list[dict[str, Any]]) -> float:
        return float(
            next(h for h in hits if h["memory"]["id"] == long["id"])["explain"]["vector"]["score"]
        )

    hits = await fast(service, cube, query)
    assert hits[0]["memory"]["id"] == long["id"], [h["memory"]["content"][:40] for h in hits]
    with_passages = score_of(hits)
    # Without them it is judged by its own embedding: the first ~190 words, all filler.
    sql(database_url, "DELETE FROM memory_passage WHERE memory_id = :m", m=long["id"])
    blind = await fast(service, cube, query)
    assert blind[0]["memory"]["id"] != long["id"] and score_of(blind) < with_passages - 0.1

    # An edit replaces the passages with those of the new content.
    resp = await service.client.patch(
        f"/v1/memories/{long['id']}",
        json={"content": "Nothing to see here any more.", "expected_version": 1},
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    n = sql(database_url, "SELECT count(*) FROM memory_passage WHERE memory_id = :m", m=long["id"])
    assert n[0][0] == 0
    assert (await fast(service, cube, "What kind of dog did Priya's sister adopt?"))[0]["memory"][
        "id"
    ] != long["id"]


@pytest.mark.anyio
async def test_passages_can_rank_in_a_channel_of_their_own(service: Service) -> None:
    cube = await make_cube(service, "long-split")
    fact = "My sister Priya adopted a three-legged greyhound called Biscuit last spring."
    long, short, _ = await add(
        service,
        cube,
        {"content": long_message(fact), "sources": [{"speaker": "user"}]},
        {"content": "Priya's favourite film is a documentary about whales."},
        {"content": FILLER * 3},
    )
    query = "Which greyhound did my sister adopt?"
    merged = next(h for h in await fast(service, cube, query) if h["memory"]["id"] == long["id"])
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={
            "query": query,
            "top_k": 10,
            "explain": True,
            "config": {
                "vector": {"weight": 1.0, "depth": 50},
                "passages": {"weight": 0.5, "depth": 50},
                "fulltext": None,
            },
        },
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    explain = {h["memory"]["id"]: h["explain"] for h in resp.json()["results"]}
    # The passage that holds the fact scores in its own channel; the vector channel now
    # judges the memory by its own embedding (the filler it starts with) alone.
    best = merged["explain"]["vector"]["score"]
    assert explain[long["id"]]["passage"] == {"rank": 1, "score": best}
    assert explain[long["id"]]["vector"]["score"] < best - 0.1
    # Only long memories have passages.
    assert "passage" not in explain[short["id"]]
    assert sorted(e["vector"]["rank"] for e in explain.values()) == [1, 2, 3]


@pytest.mark.anyio
async def test_erasure_removes_the_passage_vectors(service: Service, database_url: str) -> None:
    cube = await make_cube(service, "long-erase")
    (long,) = await add(service, cube, {"content": long_message("The code is 4411.")})
    assert sql(
        database_url, "SELECT count(*) FROM memory_passage WHERE memory_id = :m", m=long["id"]
    )[0][0]
    resp = await service.client.delete(
        f"/v1/memories/{long['id']}", params={"hard": "true"}, headers=service.auth()
    )
    assert resp.status_code == 204
    n = sql(database_url, "SELECT count(*) FROM memory_passage WHERE memory_id = :m", m=long["id"])
    assert n[0][0] == 0


@pytest.mark.anyio
async def test_an_imported_long_memory_gets_its_passages(
    service: Service, database_url: str
) -> None:
    from tests.api.test_transfer import export, send

    cube, target = await make_cube(service, "long-src"), await make_cube(service, "long-dst")
    await add(service, cube, {"content": long_message("The code is 4411.")})
    lines = await export(service, cube)
    resp = await send(service, target, "\n".join(json.dumps(x) for x in lines).encode())
    assert resp.status_code in (200, 201), resp.text
    (n,) = sql(database_url, "SELECT count(*) FROM memory_passage WHERE cube_id = :c", c=target)
    assert n[0] == 2
