"""The HNSW index holds only promoted (large) cubes: promotion by a job, the exact tail,
writes to promoted cubes, and the planner using the partial index."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from memsvc.config import Settings
from memsvc.store import ann
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import sql, worker_for

pytestmark = pytest.mark.anyio

THRESHOLD = 12
TEXTS = [
    f"{who} {what}"
    for who in ("Caroline", "Melanie", "The team", "Grandma")
    for what in (
        "baked an apple pie with cinnamon",
        "went hiking in the mountains",
        "shipped the billing service",
        "painted a sunrise over the lake",
        "adopted a rescue dog",
    )
]


@pytest.fixture()
def settings(settings: Settings) -> Settings:
    """Cubes above 12 memories count as large here (the default is 20,000). The fold delay is
    long enough that a slow machine never reaches it within a test: folds are made due by
    moving `run_after`, never by waiting."""
    return settings.model_copy(
        update={"exact_search_threshold": THRESHOLD, "ann_fold_delay_s": 600.0}
    )


async def search(svc: Service, cube: str, query: str) -> dict[str, Any]:
    resp = await svc.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": query, "preset": "fast", "top_k": 5, "explain": True},
        headers=svc.auth(),
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def flags(url: str, cube: str) -> dict[str, bool]:
    return {
        c: bool(a)
        for c, a in sql(url, "SELECT content, ann FROM memory WHERE cube_id = :c", c=cube)
    }


def ann_jobs(url: str, cube: str) -> list[str]:
    rows = sql(
        url,
        "SELECT status FROM job WHERE kind = 'ann_index' AND payload->>'cube_id' = :c",
        c=cube,
    )
    return [r[0] for r in rows]


async def expected_top(runtime: Any, texts: list[str], query: str, k: int) -> list[str]:
    vecs = runtime.embed_sync(texts)
    q = await runtime.embed_query(query)  # the query path (the int8 graph by default)
    return [texts[i] for i in np.argsort(-(vecs @ q), kind="stable")[:k]]


async def test_small_cube_never_enters_the_index(
    service: Service, settings: Settings, database_url: str
) -> None:
    cube = await make_cube(service, "small")
    await add(service, cube, *({"content": t} for t in TEXTS[:THRESHOLD]))
    body = await search(service, cube, "apple pie")
    assert body["exact"] is True and body["notes"] == []
    assert not any(flags(database_url, cube).values())
    assert ann_jobs(database_url, cube) == []


async def test_large_cube_is_promoted_and_searched_through_the_index(
    service: Service, runtime: Any, database_url: str
) -> None:
    cube = await make_cube(service, "large")
    await add(service, cube, *({"content": t} for t in TEXTS))
    query = "a dessert made with apples"
    want = await expected_top(runtime, TEXTS, query, 5)

    # Above the threshold but not promoted: still exact, and the promotion is queued once.
    first = await search(service, cube, query)
    assert first["exact"] is True
    assert first["notes"] == [
        "cube above the exact-search threshold: its HNSW index is being built"
    ]
    assert [r["memory"]["content"] for r in first["results"]] == want
    service.app.state.memsvc.db.caches.promotion_asked.clear()
    await search(service, cube, query)  # a pending job is not queued twice
    assert ann_jobs(database_url, cube) == ["queued"]

    assert await worker_for(service).run_until_idle() >= 1
    assert ann_jobs(database_url, cube) == ["done"]
    assert all(flags(database_url, cube).values())
    assert sql(database_url, "SELECT ann_indexed FROM cube WHERE id = :c", c=cube)[0][0] is True

    promoted = await search(service, cube, query)
    assert promoted["exact"] is False and promoted["notes"] == []
    assert [r["memory"]["content"] for r in promoted["results"]] == want

    # Small writes to a promoted cube are indexed as they are written.
    (new,) = await add(service, cube, {"content": "Grandma baked apple strudel for dessert"})
    assert flags(database_url, cube)["Grandma baked apple strudel for dessert"] is True
    hits = await search(service, cube, "apple strudel dessert")
    assert hits["results"][0]["memory"]["id"] == new["id"]


async def test_bulk_writes_to_a_promoted_cube_are_folded_in_later(
    service: Service, settings: Settings, database_url: str
) -> None:
    cube = await make_cube(service, "bulk")
    await add(service, cube, *({"content": t} for t in TEXTS))
    await search(service, cube, "anything")
    await worker_for(service).run_until_idle()
    bulk = [f"Ticket {i}: the printer on floor {i % 7} is jammed again" for i in range(63)]
    bulk.append("Caroline repaired the old sailing boat in the harbour")
    assert len(bulk) == ann.DEFER_FROM
    created = await add(service, cube, *({"content": t} for t in bulk))

    # Written unflagged, with one fold queued for later (not one per request).
    assert not any(flags(database_url, cube)[t] for t in bulk)
    (delay,) = sql(
        database_url,
        "SELECT extract(epoch FROM run_after - now()) FROM job"
        " WHERE kind = 'ann_index' AND status = 'queued' AND payload->>'cube_id' = :c",
        c=cube,
    )[0]
    assert settings.ann_fold_delay_s - 60 < float(delay) <= settings.ann_fold_delay_s
    await add(service, cube, *({"content": f"Another bulk note {i}"} for i in range(64)))
    assert ann_jobs(database_url, cube) == ["done", "queued"]

    # Meanwhile the unflagged memories are scored exactly, next to the index's hits.
    body = await search(service, cube, "who repaired a sailing boat?")
    assert body["exact"] is False
    assert body["results"][0]["memory"]["id"] == created[-1]["id"]

    await worker_for(service).run_until_idle()  # enrichment; the fold is not due yet
    assert ann_jobs(database_url, cube) == ["done", "queued"]
    sql(database_url, "UPDATE job SET run_after = now() WHERE status = 'queued'")
    assert await worker_for(service).run_until_idle() == 1
    assert all(flags(database_url, cube).values())
    (result,) = sql(
        database_url,
        "SELECT result FROM job WHERE kind = 'ann_index' AND payload->>'cube_id' = :c"
        " ORDER BY id DESC LIMIT 1",
        c=cube,
    )[0]
    assert result["indexed"] == 128 and result["passages"] == 0 and result["seconds"] >= 0


async def test_unindexed_tail_is_scored_exactly_and_requeued(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service, "tail")
    await add(service, cube, *({"content": t} for t in TEXTS))
    await search(service, cube, "anything")
    await worker_for(service).run_until_idle()
    # A write that raced the promotion: its memory is not in the index.
    (late,) = await add(service, cube, {"content": "Melanie learned to play the violin"})
    sql(database_url, "UPDATE memory SET ann = false WHERE id = :m", m=late["id"])
    service.app.state.memsvc.db.caches.promotion_asked.clear()

    body = await search(service, cube, "who plays the violin?")
    assert body["exact"] is False
    assert body["results"][0]["memory"]["id"] == late["id"]
    assert ann_jobs(database_url, cube) == ["done", "queued"]
    await worker_for(service).run_until_idle()
    assert flags(database_url, cube)["Melanie learned to play the violin"] is True


async def test_planner_uses_the_partial_hnsw_index(service: Service, database_url: str) -> None:
    cube = await make_cube(service, "plan")
    await add(service, cube, *({"content": t} for t in TEXTS))
    await search(service, cube, "anything")
    await worker_for(service).run_until_idle()
    plan = plan_of(
        database_url,
        "SELECT id FROM memory WHERE cube_id = :c AND ann AND status = 'active'"
        " ORDER BY embedding::halfvec(384) <=> CAST(:v AS halfvec(384)) LIMIT 5",
        cube,
    )
    assert "ix_memory_embedding_ann" in plan


def plan_of(url: str, query: str, cube: str) -> str:
    """The plan of ``query`` (parameters ``c``: the cube, ``v``: a vector), with sorting and
    sequential scans made unattractive: on tiny tables the planner shows it can use an index."""
    vec = "[" + ",".join(["0.05"] * 384) + "]"
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_sort = off"))
            return "\n".join(
                conn.execute(text(f"EXPLAIN {query}"), {"c": cube, "v": vec}).scalars()
            )
    finally:
        engine.dispose()


def passage_flags(url: str, cube: str) -> list[bool]:
    rows = sql(url, "SELECT ann FROM memory_passage WHERE cube_id = :c ORDER BY 1", c=cube)
    return [bool(r[0]) for r in rows]


async def test_passages_of_a_promoted_cube_are_searched_through_their_index(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service, "sentences")
    said = (
        "We spent the whole weekend repainting the kitchen cabinets sage green and fixing "
        "the hinges. By the way, my daughter Mia just started learning the violin."
    )
    (turn, *_) = await add(service, cube, {"content": said}, *({"content": t} for t in TEXTS))
    assert passage_flags(database_url, cube) == [False, False]  # one a sentence
    await search(service, cube, "anything")
    await worker_for(service).run_until_idle()
    assert passage_flags(database_url, cube) == [True, True]
    (result,) = sql(
        database_url,
        "SELECT result FROM job WHERE kind = 'ann_index' AND payload->>'cube_id' = :c",
        c=cube,
    )[0]
    assert (result["indexed"], result["passages"]) == (len(TEXTS) + 1, 2)

    body = await search(service, cube, "Which instrument is Mia learning?")
    assert body["exact"] is False
    assert body["results"][0]["memory"]["id"] == turn["id"]
    by_sentence = body["results"][0]["explain"]["vector"]["score"]

    # A small write: the memory is indexed at once, its passages are scored exactly (the
    # tail) until a fold, which the search asks for.
    (late,) = await add(
        service,
        cube,
        {
            "content": "Grandma bought a new blue bicycle in town. "
            "She says her neighbour Tom now plays the cello every evening."
        },
    )
    assert passage_flags(database_url, cube) == [False, False, True, True]
    service.app.state.memsvc.db.caches.promotion_asked.clear()
    body = await search(service, cube, "Who plays the cello?")
    assert body["exact"] is False and body["results"][0]["memory"]["id"] == late["id"]
    assert ann_jobs(database_url, cube) == ["done", "queued"]
    await worker_for(service).run_until_idle()
    assert passage_flags(database_url, cube) == [True] * 4
    body = await search(service, cube, "Which instrument is Mia learning?")
    assert body["results"][0]["memory"]["id"] == turn["id"]
    assert body["results"][0]["explain"]["vector"]["score"] == pytest.approx(by_sentence)


async def test_planner_uses_the_partial_hnsw_index_of_passages(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service, "plan-passages")
    await add(service, cube, *({"content": t} for t in TEXTS))
    plan = plan_of(
        database_url,
        "SELECT memory_id FROM memory_passage WHERE cube_id = :c AND ann"
        " ORDER BY embedding::halfvec(384) <=> CAST(:v AS halfvec(384)) LIMIT 5",
        cube,
    )
    assert "ix_memory_passage_embedding_ann" in plan


async def test_a_few_long_memories_are_promoted_by_their_passages(
    service: Service, database_url: str
) -> None:
    """Exact search scores every vector: a cube of few memories with many sentence passages
    (long messages) is promoted like a cube of many memories."""
    cube = await make_cube(service, "long")
    long = [
        " ".join(f"On day {d} {t.lower()} again." for d in range(1, 5)) for t in TEXTS[:4]
    ]  # 4 memories, 4 sentences each: 4 + 16 vectors > 12
    await add(service, cube, *({"content": t} for t in long))
    assert (
        sql(database_url, "SELECT count(*) FROM memory_passage WHERE cube_id = :c", c=cube)[0][0]
        == 16
    )
    first = await search(service, cube, "apple pie")
    assert first["exact"] is True
    assert first["notes"] == [
        "cube above the exact-search threshold: its HNSW index is being built"
    ]
    await worker_for(service).run_until_idle()
    assert ann_jobs(database_url, cube) == ["done"]
    body = await search(service, cube, "apple pie")
    assert body["exact"] is False and body["notes"] == []
    assert "apple pie" in body["results"][0]["memory"]["content"]

    # Four short memories (four vectors) stay below the threshold.
    short = await make_cube(service, "short")
    await add(service, short, *({"content": t} for t in TEXTS[:4]))
    assert (await search(service, short, "apple pie"))["exact"] is True
    assert ann_jobs(database_url, short) == []
