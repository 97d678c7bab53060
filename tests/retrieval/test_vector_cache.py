"""Exact search from vectors kept in the process: the same results as scoring in Postgres,
and never a result the database no longer holds — whichever replica wrote."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
import pytest

from memsvc.config import Settings
from memsvc.store.vector_cache import Matrix, VectorCache
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import sql

pytestmark = pytest.mark.anyio

FACTS = [
    "Ann adopted a grey cat called Pixel from the shelter in March.",
    "Bob is training for the Berlin marathon and runs every morning.",
    "The team offsite is booked at a lake house in the Alps for June.",
    "Ann's daughter Mia started violin lessons at the music school.",
    "Bob switched from coffee to green tea after his doctor's advice.",
    "The quarterly report is due on the first Friday of next month.",
    # Several sentences: passages of their own, scored by the best one.
    "We spent the evening on the budget spreadsheet and the hiring pipeline. "
    "By the way, Carol's parrot can whistle the national anthem. "
    "Then we argued about parking spaces for far too long.",
    "Dave restores vintage motorcycles in his garage on weekends.",
    "Erin is allergic to peanuts and always checks restaurant menus.",
    "The new office coffee machine only takes oat milk pods.",
]
QUERIES = [
    "which pet did Ann get?",
    "what bird can whistle?",
    "who runs marathons?",
    "food allergies",
    "where is the offsite?",
]


def test_matrix_ranks_memories_by_their_best_vector() -> None:
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(40, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [uuid.UUID(int=i + 1) for i in range(25)]
    # Rows 0-24: each memory's own vector; rows 25-39: passages of memories 0-14.
    owners = np.array(list(range(25)) + list(range(15)), dtype=np.intp)
    m = Matrix(gen=3, ids=ids, vectors=vecs, owners=owners)
    q = vecs[30] + 0.1 * vecs[2]
    q /= np.linalg.norm(q)
    scores = vecs @ q
    best = {
        ids[i]: max(float(s) for r, s in enumerate(scores) if owners[r] == i) for i in range(25)
    }
    want = sorted(best.items(), key=lambda t: (-t[1], str(t[0])))
    for depth in (1, 5, 25, 100):
        got = m.nearest(q, depth)
        assert [i for i, _ in got] == [i for i, _ in want[:depth]]
        assert np.allclose([s for _, s in got], [s for _, s in want[:depth]], atol=1e-6)
    assert got[0][0] == ids[5]  # found by its passage (row 30)
    assert (
        Matrix(gen=0, ids=[], vectors=np.zeros((0, 16), np.float32), owners=owners[:0]).nearest(
            q, 10
        )
        == []
    )


def test_a_stale_matrix_is_dropped_when_met() -> None:
    cache = VectorCache(max_bytes=1 << 20, min_vectors=0)
    key = (uuid.uuid4(), uuid.uuid4())
    m = Matrix(gen=1, ids=[], vectors=np.zeros((0, 4), np.float32), owners=np.zeros(0, np.intp))
    cache._kept[key] = m
    assert cache.get(key, 1) is m
    assert cache.get(key, 2) is None
    assert cache.get(key, 1) is None  # gone, not kept for a later generation
    assert (cache.hits, cache.misses) == (1, 2)
    assert not VectorCache(max_bytes=0).wants(key, 10_000)
    assert not VectorCache(min_vectors=100).wants(key, 99)


@asynccontextmanager
async def replica(settings: Settings, runtime: Any) -> AsyncIterator[Service]:
    """Another service process's app on the same database (its own pool and caches)."""
    from memsvc.api.app import create_app

    app = create_app(settings, runtime=runtime)
    async with app.router.lifespan_context(app):
        key = (settings.data_dir / "admin.key").read_text().strip()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://memsvc") as client:
            yield Service(app, client, key)


def kept_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"vector_cache_min": 0})


async def search(svc: Service, cube: str, query: str, **extra: Any) -> list[tuple[str, float]]:
    resp = await svc.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": query, "top_k": 10, "preset": "fast", **extra},
        headers=svc.auth(),
    )
    assert resp.status_code == 200, resp.text
    return [(r["memory"]["id"], r["score"]) for r in resp.json()["results"]]


def cache_of(svc: Service) -> VectorCache:
    vectors: VectorCache = svc.app.state.memsvc.db.caches.vectors  # type: ignore[attr-defined]
    return vectors


async def settle(svc: Service) -> None:
    await svc.app.state.memsvc.db.caches.wait()  # type: ignore[attr-defined]


async def test_kept_vectors_give_the_results_postgres_gives(
    settings: Settings, runtime: Any
) -> None:
    async with replica(kept_settings(settings), runtime) as svc:
        cube = await make_cube(svc, "kept")
        await add(svc, cube, *({"content": c} for c in FACTS))
        kept = cache_of(svc)
        size, kept.max_bytes = kept.max_bytes, 0  # off: every search scores in SQL
        in_sql = {q: await search(svc, cube, q) for q in QUERIES}
        assert kept.loads == 0 and kept.hits == 0
        kept.max_bytes = size
        await search(svc, cube, "warm up")
        await settle(svc)
        assert kept.loads == 1 and kept.hits == 0
        for q in QUERIES:
            got = await search(svc, cube, q)
            assert [i for i, _ in got] == [i for i, _ in in_sql[q]], q
            assert np.allclose([s for _, s in got], [s for _, s in in_sql[q]], atol=1e-5)
        assert kept.hits == len(QUERIES)
        # The parrot is found by its sentence passage either way.
        assert (
            got
            and (await search(svc, cube, "what bird can whistle?"))[0][0]
            == (await search(svc, cube, "Carol's parrot whistles the anthem"))[0][0]
        )
        # Filters and as_of are scored in SQL, not from the copy.
        hits = kept.hits
        await search(svc, cube, "cat", filters={"tags": ["x"]})
        assert kept.hits == hits


async def test_a_write_from_another_replica_is_seen_at_once(
    settings: Settings, runtime: Any, database_url: str
) -> None:
    s = kept_settings(settings)
    async with replica(s, runtime) as one, replica(s, runtime) as two:
        cube = await make_cube(one, "shared")
        await add(one, cube, *({"content": c} for c in FACTS))
        await search(one, cube, "warm up")
        await settle(one)
        assert cache_of(one).loads == 1
        await search(one, cube, "which pet did Ann get?")
        assert cache_of(one).hits == 1

        # Another replica writes: the next search here must find it.
        [new] = await add(two, cube, {"content": "Frank keeps three tortoises named after poets."})
        got = await search(one, cube, "who has tortoises?")
        assert got[0][0] == new["id"]
        assert cache_of(one).hits == 1  # the copy was stale: scored in SQL
        cache_of(one)._loaded_at.clear()  # let the next miss reload at once
        await search(one, cube, "who has tortoises?")
        await settle(one)
        got = await search(one, cube, "who has tortoises?")
        assert got[0][0] == new["id"] and cache_of(one).hits == 2

        # Deleted there: gone here, from the copy too (it is dropped as stale).
        resp = await two.client.delete(f"/v1/memories/{new['id']}", headers=two.auth())
        assert resp.status_code == 204, resp.text
        got = await search(one, cube, "who has tortoises?")
        assert new["id"] not in {i for i, _ in got}
        assert cache_of(one).hits == 2

        # Changed by hand in the database (no service involved): still seen.
        cache_of(one)._loaded_at.clear()
        await search(one, cube, "warm up")
        await settle(one)
        sql(
            database_url,
            "UPDATE memory SET status = 'deleted' WHERE cube_id = :c AND content LIKE 'Erin%'",
            c=cube,
        )
        got = await search(one, cube, "food allergies")
        assert all("Erin" not in c for c in await contents(one, [i for i, _ in got]))


async def contents(svc: Service, ids: list[str]) -> list[str]:
    out = []
    for mid in ids:
        resp = await svc.client.get(f"/v1/memories/{mid}", headers=svc.auth())
        out.append(str(resp.json()["content"]))
    return out


async def test_the_generation_moves_once_a_transaction_and_only_for_vectors(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service, "gen")

    def gen() -> int:
        return int(sql(database_url, "SELECT vector_gen FROM cube WHERE id = :c", c=cube)[0][0])

    g0 = gen()
    items = await add(service, cube, *({"content": c} for c in FACTS))  # one transaction
    assert gen() == g0 + 1
    mid = items[0]["id"]
    # Not what a search scores: tags, the HNSW flag, importance.
    sql(
        database_url,
        "UPDATE memory SET tags = '{x}', ann = true, importance = 0.9 WHERE id = :m",
        m=mid,
    )
    sql(database_url, "UPDATE memory_passage SET ann = true WHERE cube_id = :c", c=cube)
    assert gen() == g0 + 1
    # What it does score: an embedding, a status; a passage; a row gone.
    sql(database_url, "UPDATE memory SET embedding = embedding WHERE id = :m", m=mid)
    assert gen() == g0 + 2
    resp = await service.client.patch(
        f"/v1/memories/{mid}",
        json={"content": "Ann adopted a black cat.", "expected_version": items[0]["version"]},
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    assert gen() == g0 + 3
    sql(database_url, "DELETE FROM memory_passage WHERE cube_id = :c", c=cube)
    assert gen() == g0 + 4
    sql(database_url, "UPDATE memory SET status = 'deleted' WHERE cube_id = :c", c=cube)
    assert gen() == g0 + 5


async def test_an_empty_cube_is_kept_empty(settings: Settings, runtime: Any) -> None:
    async with replica(kept_settings(settings), runtime) as svc:
        cube = await make_cube(svc, "empty")
        assert await search(svc, cube, "anything") == []
        await settle(svc)
        assert cache_of(svc).loads == 1
        assert await search(svc, cube, "anything") == [] and cache_of(svc).hits == 1
