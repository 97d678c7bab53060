"""BM25 on large scopes: the cached lexicon, "minimum should match" candidates, and the
channel giving exact BM25's results through them (real Postgres)."""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from memsvc.config import Settings
from memsvc.retrieval import lexicon as lx
from memsvc.retrieval.channels import bm25_channel, scope_stats
from memsvc.retrieval.search import _scoped
from memsvc.schemas import SearchFilters
from memsvc.store.caches import caches_of
from memsvc.store.db import Database
from memsvc.store.models import Memory
from tests.api.helpers import add, make_cube
from tests.conftest import Service

pytestmark = pytest.mark.anyio

WEIGHTS = {"alpha": 3.0, "beta": 2.0, "gamma": 1.5, "delta": 1.0}


@pytest.fixture()
def settings(settings: Settings) -> Settings:
    """Cubes above 3 memories count as large: the lexicon path serves full-text."""
    return settings.model_copy(update={"exact_search_threshold": 3})


@pytest.fixture()
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_async_engine(database_url)
    async with AsyncSession(engine) as s:
        yield s
    await engine.dispose()


@pytest.mark.parametrize("theta", [1.0, 2.5, 3.5, 5.0, 7.5])
def test_candidate_tsquery_is_the_weight_threshold(database_url: str, theta: float) -> None:
    query = lx.candidate_tsquery(WEIGHTS, theta)
    assert query is not None
    engine = create_engine(database_url)
    with engine.connect() as conn:
        for k in range(1, len(WEIGHTS) + 1):
            for words in itertools.combinations(WEIGHTS, k):
                doc = " ".join(words)
                hit = conn.execute(
                    text("SELECT CAST(:d AS tsvector) @@ CAST(:q AS tsquery)"),
                    {"d": doc, "q": query},
                ).scalar_one()
                assert hit == (sum(WEIGHTS[w] for w in words) >= theta), (doc, query)
    engine.dispose()


def test_candidate_tsquery_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lx.candidate_tsquery(WEIGHTS, 0.0) is None
    assert lx.candidate_tsquery(WEIGHTS, 99.0) is None
    monkeypatch.setattr(lx, "MAX_LEAVES", 3)
    assert lx.candidate_tsquery(WEIGHTS, 3.5) is None


def sampled(n: int, sample_size: int, **holders: list[int]) -> lx.Lexicon:
    """A lexicon of ``n`` memories whose sample says which sampled memories hold a word."""
    sample = {w: np.array(ix, dtype=np.int32) for w, ix in holders.items()}
    return lx.Lexicon(n=n, avgdl=3.0, min_df=2, df={}, sample_size=sample_size, sample=sample)


def test_thresholds_from_the_sample() -> None:
    lex = sampled(100, 10, a=[0, 1, 2], b=[0, 1, 3, 4, 5, 6, 7, 8])
    weights = {"a": 2.0, "b": 1.0, "unseen": 5.0}
    # Sample sums: 3, 3, 2, then six 1s; each sampled memory stands for ten.
    assert lx.thresholds(lex, weights, 20) == [3.0, 1.0, 0.0]
    assert lx.thresholds(lex, weights, 50) == [1.0, 0.0]
    assert lx.thresholds(lex, weights, 200) == [0.0]


def test_thresholds_step_over_a_plateau_of_common_words() -> None:
    lex = sampled(1000, 100, rare=[0, 1], common=list(range(60)))
    weights = {"rare": 4.0, "common": 1.0}
    # Sample sums: 5, 5, then 58 memories tied at 1 (they hold only "common"); each sampled
    # memory stands for ten, so 40 memories need the plateau.
    assert lx.thresholds(lex, weights, 40) == [1.0, 0.0]
    # With a cap of 100 memories the plateau (580) is never let through: only the memories
    # above it are scored, and there is no step to every match.
    assert lx.thresholds(lex, weights, 40, cap=100) == [5.0]
    # A plateau with nothing above it stays: there is no stricter sum to ask for.
    assert lx.thresholds(lex, {"common": 1.0}, 40, cap=100) == [1.0]
    # A rare lexeme (not in the sample) is something stricter to ask for.
    assert lx.thresholds(lex, {"common": 1.0, "unseen": 3.0}, 40, cap=100) == [3.0]


DOCS = [
    *(f"alpha beta gamma note {i}" for i in range(6)),
    *(f"alpha beta memo {i}" for i in range(6)),
    *(f"alpha entry {i}" for i in range(6)),
    "gamma delta epsilon",
    "delta epsilon zeta",
    "unrelated words only",
]


async def _cube(service: Service, session: AsyncSession, docs: list[dict[str, Any]]) -> Any:
    cube = await make_cube(service, f"lex-{uuid.uuid4().hex[:6]}")
    await add(service, cube, *docs)
    tenant = (
        await session.execute(text("SELECT tenant_id FROM cube WHERE id = :c"), {"c": cube})
    ).scalar_one()
    return tenant, uuid.UUID(cube)


def _base(tenant: Any, cube: uuid.UUID, filters: SearchFilters | None = None) -> Any:
    return _scoped(select(Memory.id), tenant_id=tenant, cube_id=cube, filters=filters, as_of=None)


async def test_lexicon_counts_like_ts_stat(service: Service, session: AsyncSession) -> None:
    tenant, cube = await _cube(service, session, [{"content": d} for d in DOCS])
    lex = await lx.lexicon(session, _base(tenant, cube))
    stat = await session.execute(
        text(
            "SELECT word, ndoc FROM ts_stat("
            f"'SELECT tsv FROM memory WHERE cube_id = ''{cube}''') WHERE ndoc >= 2"
        )
    )
    assert lex.n == len(DOCS) and lex.min_df == 2
    assert lex.df == dict(stat.all())
    assert lex.sample_size == len(DOCS)
    assert len(lex.sample["alpha"]) == 18 and len(lex.sample["zeta"]) == 1


@pytest.mark.parametrize("depth", [50, 2])
async def test_large_path_returns_exact_bm25(
    service: Service, session: AsyncSession, depth: int
) -> None:
    tenant, cube = await _cube(service, session, [{"content": d} for d in DOCS])
    base = _base(tenant, cube)
    stats = await scope_stats(session, base, 10_000)
    lex = await lx.lexicon(session, base)
    for query in ("alpha beta gamma", "gamma delta", "epsilon alpha", "zeta"):
        exact = await bm25_channel(session, base, query, depth, stats)
        large = await bm25_channel(session, base, query, depth, stats, lexicon=lex)
        assert [(m, round(s, 9)) for m, s in large] == [(m, round(s, 9)) for m, s in exact]


async def test_bm25_reads_the_facts_of_what_it_ranks(
    service: Service, session: AsyncSession
) -> None:
    """Asked for facts, BM25 returns the same ranking and each ranked memory's facts as a
    statement of their own reads them (one path with the lexicon, one without)."""
    from datetime import UTC, datetime

    from memsvc.retrieval.search import _facts

    tenant, cube = await _cube(service, session, [{"content": d} for d in DOCS])
    base = _base(tenant, cube)
    stats = await scope_stats(session, base, 10_000)
    lex = await lx.lexicon(session, base)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    await session.execute(update(Memory).where(Memory.cube_id == cube).values(valid_to=now))
    columns = (Memory.id, *_facts(now))
    for lexicon in (None, lex):
        plain = await bm25_channel(session, base, "alpha beta gamma", 5, stats, lexicon=lexicon)
        into: dict[uuid.UUID, Any] = {}
        ranked = await bm25_channel(
            session,
            base,
            "alpha beta gamma",
            5,
            stats,
            lexicon=lexicon,
            facts=_facts(now),
            into=into,
        )
        assert ranked == plain and set(into) == {m for m, _ in ranked}
        direct = await session.execute(select(*columns).where(Memory.id.in_(list(into))))
        for row in direct:
            got = into[row.id]
            assert (got.occurred_at, got.created_at, got.importance, got.valid) == (
                row.occurred_at,
                row.created_at,
                row.importance,
                row.valid,
            )
            assert got.valid is False  # valid until ``now``: not at it


async def test_bm25_scores_are_okapi_over_each_memory_term_counts(
    service: Service, session: AsyncSession
) -> None:
    """Each score is Okapi BM25 recomputed here from the memory's own tsvector (term
    counts from every position, repeated words included): scoring reads only the query's
    lexemes of a candidate, and must count them as the whole tsvector does."""
    from memsvc.retrieval.channels import BM25_B, BM25_K1

    docs = [
        "the garden garden garden needs water",
        "water the garden at dawn, water it at dusk, water it again",
        "a dry spell in the garden",
        "nothing about plants here",
        *(f"filler line {i} about the weather" for i in range(8)),
    ]
    tenant, cube = await _cube(service, session, [{"content": d} for d in docs])
    base = _base(tenant, cube)
    stats = await scope_stats(session, base, 10_000)
    rows = await session.execute(
        text(
            "SELECT m.id, m.tsv_len, l.lexeme, coalesce(array_length(l.positions, 1), 1) "
            "FROM memory m, unnest(m.tsv) l WHERE m.cube_id = :c"
        ),
        {"c": cube},
    )
    tf: dict[Any, dict[str, int]] = {}
    dl: dict[Any, int] = {}
    for mid, length, lexeme, count in rows:
        tf.setdefault(mid, {})[lexeme] = count
        dl[mid] = length
    n, avgdl = len(dl), sum(dl.values()) / len(dl)
    assert stats.n == n and stats.avgdl == pytest.approx(avgdl)
    ranked = await bm25_channel(session, base, "water the garden", 10, stats)
    assert len(ranked) == 3
    for mid, score in ranked:
        want = 0.0
        for lexeme in ("water", "garden"):
            df = sum(1 for terms in tf.values() if lexeme in terms)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            f = tf[mid].get(lexeme, 0)
            want += (
                idf * f * (BM25_K1 + 1) / (f + BM25_K1 * (1 - BM25_B + BM25_B * dl[mid] / avgdl))
            )
        assert score == pytest.approx(want, rel=1e-9)
    # Repeated words were counted: both memories with a word three times are ranked.
    repeats = sorted(max(tf[mid].get(w, 0) for w in ("water", "garden")) for mid, _ in ranked)
    assert repeats == [1, 3, 3]


async def test_threshold_relaxes_when_the_sample_misleads(
    service: Service, session: AsyncSession
) -> None:
    """A lexicon of the whole cube says many memories hold all three words; the scope
    (one user's memories) holds none: the threshold relaxes to every match."""
    docs = [{"content": f"alpha beta gamma note {i}"} for i in range(40)]
    docs += [{"content": f"alpha entry {i}", "user_id": "u2"} for i in range(3)]
    docs += [{"content": "gamma on its own", "user_id": "u2"}]
    tenant, cube = await _cube(service, session, docs)
    lex = await lx.lexicon(session, _base(tenant, cube))
    assert lx.thresholds(lex, {"alpha": 1.0, "beta": 1.0, "gamma": 1.0}, 16) == [3.0, 0.0]
    scope = _base(tenant, cube, SearchFilters(user_id="u2"))
    stats = await scope_stats(session, scope, 10_000)
    ranked = await bm25_channel(session, scope, "alpha beta gamma", 4, stats, lexicon=lex)
    contents = (
        await session.execute(select(Memory.content).where(Memory.id.in_([m for m, _ in ranked])))
    ).scalars()
    assert sorted(contents) == [
        "alpha entry 0",
        "alpha entry 1",
        "alpha entry 2",
        "gamma on its own",
    ]


async def test_bm25_above_the_exact_threshold(service: Service, session: AsyncSession) -> None:
    """Above the threshold the API's full-text scores are BM25's (no ts_rank_cd note)."""
    tenant, cube = await _cube(service, session, [{"content": d} for d in DOCS])
    config = {"vector": None, "fulltext": {"weight": 1, "depth": 10}}
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": "gamma delta", "config": config, "explain": True, "top_k": 10},
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["notes"] == []
    got = [(r["memory"]["id"], r["explain"]["fulltext"]["score"]) for r in body["results"]]
    base = _base(tenant, cube)
    exact = await bm25_channel(
        session, base, "gamma delta", 10, await scope_stats(session, base, 10_000)
    )
    assert [(m, pytest.approx(s)) for m, s in got] == [(str(m), s) for m, s in exact]


async def test_a_stale_lexicon_answers_while_it_is_refreshed(
    service: Service, session: AsyncSession, database_url: str
) -> None:
    tenant, cube = await _cube(service, session, [{"content": d} for d in DOCS])
    base = _base(tenant, cube)
    caches = caches_of(session)
    db = Database.connect(database_url)
    try:
        assert await db.detect_rls()

        def reopen() -> Any:  # as the search's own transaction: the tenant role under RLS
            return db.tenant_transaction(tenant)

        first = await lx.cached_lexicon(session, base, reopen=reopen)
        assert first.n == len(DOCS)
        await add(service, str(cube), *({"content": f"alpha later {i}"} for i in range(3)))
        key = lx.scope_key(base)

        def expire(by: float) -> None:
            lex, _ = caches.lexicons[key]
            caches.lexicons[key] = (lex, time.monotonic() - by)

        # Past its time: the stale lexicon answers at once and one refresh starts.
        expire(1.0)
        assert await lx.cached_lexicon(session, base, reopen=reopen) is first
        assert await lx.cached_lexicon(session, base, reopen=reopen) is first
        assert len(caches.tasks) == 1
        await caches.wait()
        fresh = await lx.cached_lexicon(session, base, reopen=reopen)
        assert fresh.n == len(DOCS) + 3 and fresh.df["alpha"] == first.df["alpha"] + 3

        # Far past its time, or with no way to refresh it apart: the search recomputes it.
        await add(service, str(cube), {"content": "alpha once more"})
        expire(lx._MAX_STALE_S + 1)
        assert (await lx.cached_lexicon(session, base, reopen=reopen)).n == len(DOCS) + 4
        await add(service, str(cube), {"content": "alpha and again"})
        expire(1.0)
        assert (await lx.cached_lexicon(session, base)).n == len(DOCS) + 5
        assert not caches.tasks
    finally:
        await caches.wait()
        await db.close()
