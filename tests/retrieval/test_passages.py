"""Long memories are embedded as passages too, and merged ones by their messages: the vector
channel sees all of them."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from memsvc.policy import writes
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


def test_memories_of_several_sentences_get_one_passage_a_sentence() -> None:
    turn = (
        "I spent the weekend repainting the kitchen cabinets sage green. "
        "By the way, my daughter Mia just started learning the violin! Ok. "
        "I spent the weekend repainting the kitchen cabinets sage green."
    )
    assert indexing.passages(turn, ["Ann"]) == [
        "Ann: I spent the weekend repainting the kitchen cabinets sage green.",
        "Ann: By the way, my daughter Mia just started learning the violin!",
    ]  # each sentence once; "Ok." is too short to be one
    assert indexing.passages("My daughter Mia just started learning the violin.") == []
    assert indexing.passages("Mia plays. The violin, since May.\nShe loves it.") == []
    # A long memory's windows come first, its sentences while there is room.
    many = " ".join(f"Sentence number {i} is here." for i in range(200))
    got = indexing.passages(many)
    assert len(got) == indexing.MAX_PASSAGES and got[0].startswith("Sentence number 24 is here.")
    assert got[-1] == "Sentence number 55 is here."


@pytest.mark.anyio
async def test_a_fact_said_in_passing_is_found_by_its_sentence(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service, "sentences")
    turn = (
        "I spent the whole weekend repainting the kitchen cabinets a soft sage green, sanding "
        "every door and fixing the hinges that had squeaked for years. By the way, my daughter "
        "Mia just started learning the violin. Anyway, the kitchen finally looks finished."
    )
    (mem, *_) = await add(
        service,
        cube,
        {"content": turn, "sources": [{"speaker": "user"}]},
        {"content": "Our neighbour's son plays football on Saturdays."},
        {"content": "The paint shop on Main Street closes at six."},
    )
    assert passage_count(database_url, mem["id"]) == 3
    query = "Which instrument is Mia learning?"
    [hit] = [h for h in await fast(service, cube, query) if h["memory"]["id"] == mem["id"]]
    with_sentences = float(hit["explain"]["vector"]["score"])
    sql(database_url, "DELETE FROM memory_passage WHERE memory_id = :m", m=mem["id"])
    [hit] = [h for h in await fast(service, cube, query) if h["memory"]["id"] == mem["id"]]
    # Judged by the whole turn's vector alone, the kitchen drowns the violin.
    assert float(hit["explain"]["vector"]["score"]) < with_sentences - 0.1


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
    # Two windows, then its two distinct sentences (the filler one and the fact).
    assert passage_count(database_url, long["id"]) == len(indexing.passages(long["content"])) == 4
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
    assert n[0] == len(indexing.passages(long_message("The code is 4411."))) == 4


# A question and its answer from someone else: the learned policy folds the answer into the
# question's memory ("reply to the question before it").
ASKED = {
    "role": "user",
    "name": "Ann",
    "content": "Did you finish the quarterly budget review and the hiring plan for the team?",
}
ANSWERED = {
    "role": "user",
    "name": "Bob",
    "content": "Not yet. My sister Priya adopted a three-legged greyhound called Biscuit.",
}
DOG = "Which greyhound did Priya adopt?"


def said(*messages: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**m, "session_id": "s1", "timestamp": f"2024-03-01T10:0{i}:00Z", "external_id": f"t{i}"}
        for i, m in enumerate(messages)
    ]


async def ingest(svc: Service, cube: str, policy: str, *messages: dict[str, Any]) -> Any:
    resp = await svc.client.post(
        f"/v1/cubes/{cube}/ingest",
        json={"messages": list(messages), "policy": policy},
        headers=svc.auth(),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def vector_score(hits: list[dict[str, Any]], memory_id: str) -> float:
    return float(
        next(h for h in hits if h["memory"]["id"] == memory_id)["explain"]["vector"]["score"]
    )


def passage_count(url: str, memory_id: str) -> int:
    return int(
        sql(url, "SELECT count(*) FROM memory_passage WHERE memory_id = :m", m=memory_id)[0][0]
    )


@pytest.mark.anyio
async def test_a_merged_memory_is_found_as_well_as_its_best_message_alone(
    service: Service, database_url: str
) -> None:
    # Each message alone (store_all): the answer's memory is what the question should find.
    alone = await make_cube(service, "alone")
    out = await ingest(service, alone, "store_all", *said(ASKED, ANSWERED))
    answer_alone = out["decisions"][1]["memory_id"]
    best_alone = vector_score(await fast(service, alone, DOG), answer_alone)

    cube = await make_cube(service, "merged")
    out = await ingest(service, cube, "learned", *said(ASKED, ANSWERED))
    assert [d["operation"] for d in out["decisions"]] == ["insert", "merge"]
    [merged] = out["memories"]
    assert [s["external_id"] for s in merged["sources"]] == ["t0", "t1"]
    # One passage per message, its own embedding as ingest computed it (no new embedding):
    # the merged memory scores as the answer alone does, not as the text of both.
    assert passage_count(database_url, merged["id"]) == 2
    hits = await fast(service, cube, DOG)
    assert hits[0]["memory"]["id"] == merged["id"]
    assert vector_score(hits, merged["id"]) == pytest.approx(best_alone, abs=1e-4)
    sql(database_url, "DELETE FROM memory_passage WHERE memory_id = :m", m=merged["id"])
    diluted = vector_score(await fast(service, cube, DOG), merged["id"])
    assert diluted < best_alone - 0.05

    # Store_all writes no passages for short messages, as before.
    assert passage_count(database_url, answer_alone) == 0


@pytest.mark.anyio
async def test_merging_into_a_stored_memory_keeps_its_vectors_and_edits_replace_them(
    service: Service, database_url: str
) -> None:
    alone = await make_cube(service, "alone-live")
    out = await ingest(service, alone, "store_all", *said(ASKED, ANSWERED))
    best_alone = vector_score(await fast(service, alone, DOG), out["decisions"][1]["memory_id"])

    # An agent writing live: the answer comes in a request of its own and is merged into
    # the thread's last stored memory (a new version).
    cube = await make_cube(service, "live")
    asked, answered = said(ASKED, ANSWERED)
    first = await ingest(service, cube, "learned", asked)
    [mem] = first["memories"]
    assert passage_count(database_url, mem["id"]) == 0
    out = await ingest(service, cube, "learned", answered)
    [d] = out["decisions"]
    assert (d["operation"], d["memory_id"], d["memory_version"]) == ("merge", mem["id"], 2)
    # The vector it had (the question's) and the answer's.
    assert passage_count(database_url, mem["id"]) == 2
    hits = await fast(service, cube, DOG)
    assert hits[0]["memory"]["id"] == mem["id"]
    assert vector_score(hits, mem["id"]) == pytest.approx(best_alone, abs=1e-4)

    # An edit's content is no longer those messages: its passages are its own again.
    resp = await service.client.patch(
        f"/v1/memories/{mem['id']}",
        json={"content": "Ann asked Bob about the budget review.", "expected_version": 2},
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    assert passage_count(database_url, mem["id"]) == 0
    assert vector_score(await fast(service, cube, DOG), mem["id"]) < best_alone - 0.05


@pytest.mark.anyio
async def test_erasing_a_merged_memory_removes_its_message_vectors(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service, "merged-erase")
    out = await ingest(service, cube, "learned", *said(ASKED, ANSWERED))
    [merged] = out["memories"]
    assert passage_count(database_url, merged["id"]) == 2
    resp = await service.client.delete(
        f"/v1/memories/{merged['id']}", params={"hard": "true"}, headers=service.auth()
    )
    assert resp.status_code == 204
    assert passage_count(database_url, merged["id"]) == 0


def distinct_text(i: int, words: int) -> str:
    rng = random.Random(i)
    return f"Note {i}: " + " ".join(rng.choice(VOCABULARY) for _ in range(words))


VOCABULARY = (
    "garden kitchen budget river mountain violin passport greyhound bakery meeting invoice "
    "lantern harbour museum bicycle concert recipe ledger orchard pottery telescope ferry "
    "sunrise library marathon chess tulip comet pharmacy glacier festival notebook"
).split()


@pytest.mark.anyio
async def test_every_row_of_a_mixed_batch_goes_back_to_its_own_text(
    service: Service, runtime: Any, database_url: str
) -> None:
    """A batch's texts and passages are embedded sorted by length, in chunks (the write
    path's ``_EmbedPlan``); each vector is stored with the text it is of, the same vector
    as that text embedded alone (up to padding)."""
    cube = await make_cube(service, "long-mixed")
    # Short, medium and long (3 to 5 passages) interleaved, over more than one chunk.
    sizes = [8, 400, 60, 700, 20, 520, 120] * 12
    contents = [distinct_text(i, n) for i, n in enumerate(sizes)]
    assert len(contents) > writes.EMBED_CHUNK
    made = await add(service, cube, *({"content": c} for c in contents))
    expected_texts: list[str] = []
    stored: list[np.ndarray] = []
    for memory, content in zip(made, contents, strict=True):
        assert memory["content"] == content
        (own,) = sql(
            database_url, "SELECT embedding::text FROM memory WHERE id = :m", m=memory["id"]
        )
        later = sql(
            database_url,
            "SELECT embedding::text FROM memory_passage WHERE memory_id = :m ORDER BY idx",
            m=memory["id"],
        )
        texts = [content, *indexing.passages(content)]
        assert len(later) == len(texts) - 1
        expected_texts += texts
        stored += [np.asarray(json.loads(row[0]), dtype=np.float32) for row in [own, *later]]
    expected = runtime.embed_sync(expected_texts)
    cosine = np.stack(stored) @ expected.T
    # Each stored vector is its own text's (and no other text's) ...
    assert list(cosine.argmax(axis=1)) == list(range(len(expected_texts)))
    assert cosine.diagonal().min() >= 0.9999
    # ... and the texts are told apart (a swapped row would show).
    np.fill_diagonal(cosine, 0.0)
    assert cosine.max() < 0.999
