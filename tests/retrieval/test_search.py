"""Search through the real app: presets, configs, channels, filters, as_of, exact path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from tests.api.helpers import add, assert_error, make_cube
from tests.conftest import Service

pytestmark = pytest.mark.anyio

FACTS = [
    "Caroline went to the LGBTQ support group on Sunday",
    "Melanie painted a sunrise over the lake",
    "The team shipped the billing service to production",
    "Melanie ran a charity race for mental health",
    "Caroline is researching adoption agencies",
    "Grandma's apple pie recipe uses cinnamon and nutmeg",
]
ALL_CHANNELS: dict[str, Any] = {
    "vector": {"weight": 1, "depth": 50},
    "fulltext": {"weight": 1, "depth": 50},
    "time": {"weight": 1, "depth": 50},
}


async def search(svc: Service, cube: str, **body: Any) -> dict[str, Any]:
    resp = await svc.client.post(f"/v1/cubes/{cube}/search", json=body, headers=svc.auth())
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def contents(body: dict[str, Any]) -> list[str]:
    return [r["memory"]["content"] for r in body["results"]]


@pytest.fixture()
async def cube(service: Service) -> str:
    cube_id = await make_cube(service)
    await add(service, cube_id, *({"content": c} for c in FACTS))
    return cube_id


@pytest.mark.parametrize("preset", ["fast", "hybrid", "rrf", "learned", "deep"])
async def test_presets(service: Service, cube: str, preset: str) -> None:
    body = await search(service, cube, query="Who painted a sunrise?", preset=preset)
    assert body["preset"] == preset
    assert contents(body)[0] == "Melanie painted a sunrise over the lake"
    assert body["exact"] is True
    # No reranker is configured in this app: deep says so and keeps the fused order.
    assert body["reranked"] is False
    if preset == "deep":
        assert body["notes"] == ["no reranker configured: results are in fused order"]
        hybrid = await search(service, cube, query="Who painted a sunrise?", preset="hybrid")
        assert contents(body) == contents(hybrid)


async def test_full_config(service: Service, cube: str) -> None:
    config = {
        **ALL_CHANNELS,
        "lexical_scorer": "ts_rank",
        "rrf_k": 10,
        "recency_weight": 0.01,
        "importance_weight": 0.01,
    }
    body = await search(service, cube, query="charity race", config=config, top_k=3, explain=True)
    assert body["preset"] is None
    assert len(body["results"]) == 3
    assert contents(body)[0] == "Melanie ran a charity race for mental health"
    assert set(body["results"][0]["explain"]) == {"vector", "fulltext"}


async def test_unknown_preset(service: Service, cube: str) -> None:
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search", json={"query": "x", "preset": "nope"}, headers=service.auth()
    )
    err = assert_error(resp, 400, "unknown_preset")
    assert err["detail"] == {"presets": ["deep", "fast", "hybrid", "learned", "rrf"]}


async def test_bad_config_is_rejected(service: Service, cube: str) -> None:
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": "x", "config": {"lexical_scorer": "tfidf"}},
        headers=service.auth(),
    )
    assert_error(resp, 422)


async def test_explain_shows_channels(service: Service, cube: str) -> None:
    body = await search(service, cube, query="apple pie recipe", explain=True)
    top = body["results"][0]
    assert top["memory"]["content"].startswith("Grandma's apple pie")
    assert set(top["explain"]) == {"vector", "fulltext"}
    assert top["explain"]["vector"]["rank"] == 1
    assert top["explain"]["fulltext"]["rank"] == 1
    assert top["explain"]["fulltext"]["score"] > 0
    # A result only the vector channel found has no fulltext entry.
    vector_only = [r for r in body["results"] if "fulltext" not in r["explain"]]
    assert vector_only and all(set(r["explain"]) == {"vector"} for r in vector_only)
    plain = await search(service, cube, query="apple pie recipe")
    assert all(r["explain"] is None for r in plain["results"])


async def test_bm25_prefers_rare_words(service: Service) -> None:
    cube = await make_cube(service, "bm25")
    await add(
        service,
        cube,
        {"content": "we talked about the weather and the weather again"},
        {"content": "the weather was fine and we went kayaking"},
        {"content": "nothing in common here"},
    )
    config = {"vector": None, "fulltext": {"weight": 1, "depth": 10}}
    body = await search(service, cube, query="weather kayaking", config=config, explain=True)
    assert contents(body) == [
        "the weather was fine and we went kayaking",
        "we talked about the weather and the weather again",
    ]


async def test_session_context_finds_answers(service: Service) -> None:
    """A reply is found by the words of the question it answers (same session, same batch)."""
    cube = await make_cube(service, "ctx")

    def turn(speaker: str, text: str) -> dict[str, Any]:
        return {"content": text, "session_id": "s1", "sources": [{"speaker": speaker}]}

    await add(
        service,
        cube,
        turn("Mel", "When did you go to the pottery workshop?"),
        turn("Caro", "Last Saturday, it was lovely."),
        {"content": "Unrelated note about Saturday errands", "session_id": "s2"},
    )
    config = {"vector": None, "fulltext": {"weight": 1, "depth": 10}}
    body = await search(service, cube, query="pottery workshop", config=config)
    assert contents(body) == [
        "When did you go to the pottery workshop?",
        "Last Saturday, it was lovely.",
    ]
    # The stored content is unchanged by the context it is indexed with.
    assert body["results"][1]["memory"]["content"] == "Last Saturday, it was lovely."


async def test_a_long_message_is_indexed_without_context(service: Service) -> None:
    """A message of more than ``CONTEXT_UP_TO`` words names its own subject: the turn before
    it does not make it a match (a short reply in the same place is one)."""
    cube = await make_cube(service, "long-ctx")
    long_reply = " ".join(["Here is a long and general answer about many other things."] * 9)

    def turn(speaker: str, text: str, session: str) -> dict[str, Any]:
        return {"content": text, "session_id": session, "sources": [{"speaker": speaker}]}

    for session, reply in (("long", long_reply), ("short", "Last Saturday, it was lovely.")):
        await add(service, cube, turn("Mel", "When did you go to the pottery workshop?", session))
        await add(service, cube, turn("Caro", reply, session))
    config = {"vector": None, "fulltext": {"weight": 1, "depth": 10}}
    body = await search(service, cube, query="pottery workshop", config=config)
    assert contents(body) == [
        "When did you go to the pottery workshop?",
        "When did you go to the pottery workshop?",
        "Last Saturday, it was lovely.",
    ]


CONVERSATION = [
    ("Mel", "When did you go to the pottery workshop?"),
    ("Caro", "Last Saturday, it was lovely."),
    ("Mel", "Did you make anything there?"),
    ("Caro", "A blue bowl for my mum, she keeps her keys in it."),
    ("Mel", "How is the adoption going?"),
    ("Caro", "We met the agency on Friday and the interview went well."),
    ("Mel", "What did you do at the weekend?"),
    ("Caro", "We went camping by the lake with the kids."),
]
QUERIES = ["pottery workshop", "what did Caro make", "adoption agency interview", "weekend lake"]


def turns(session: str | None, day: str) -> list[dict[str, Any]]:
    return [
        {
            "content": text,
            **({"session_id": session} if session else {}),
            "sources": [{"speaker": who, "occurred_at": f"{day}T10:{i:02d}:00Z"}],
        }
        for i, (who, text) in enumerate(CONVERSATION)
    ]


async def rankings(svc: Service, cube: str) -> list[list[str]]:
    return [contents(await search(svc, cube, query=q, top_k=8)) for q in QUERIES]


@pytest.mark.parametrize("session", ["s1", None], ids=["session_id", "same_day"])
async def test_rankings_do_not_depend_on_how_writes_are_split(
    service: Service, session: str | None
) -> None:
    """A turn's context comes from the store: one turn a request ranks as one batch does,
    threads being the session, or else the day (and user/agent) of sessionless memories."""
    whole, one_by_one = await make_cube(service, "whole"), await make_cube(service, "turns")
    noise = {"content": "Unrelated note about Saturday errands", "session_id": "other"}
    await add(service, whole, noise, *turns(session, "2023-05-08"))
    await add(service, one_by_one, noise)
    for item in turns(session, "2023-05-08"):
        await add(service, one_by_one, item)
    got = await rankings(service, one_by_one)
    assert got == await rankings(service, whole)
    # The answer is found by its question's words, written alone as it was.
    fulltext = {"vector": None, "fulltext": {"weight": 1, "depth": 10}}
    body = await search(service, one_by_one, query="pottery workshop", config=fulltext)
    assert "Last Saturday, it was lovely." in contents(body)


async def test_an_edit_keeps_the_context_it_was_indexed_with(service: Service) -> None:
    cube = await make_cube(service, "edit-ctx")
    first, second = (await add(service, cube, *turns("s1", "2023-05-08")))[:2]
    resp = await service.client.patch(
        f"/v1/memories/{second['id']}",
        json={"content": "Last Saturday, it was lovely and sunny.", "expected_version": 1},
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    fulltext = {"vector": None, "fulltext": {"weight": 1, "depth": 10}}
    body = await search(service, cube, query="pottery workshop", config=fulltext)
    assert contents(body)[:2] == [first["content"], "Last Saturday, it was lovely and sunny."]


async def test_an_edit_past_the_context_limit_drops_the_context(service: Service) -> None:
    cube = await make_cube(service, "edit-long")
    first, second = (await add(service, cube, *turns("s1", "2023-05-08")))[:2]
    long_reply = " ".join(["Last Saturday, it was lovely and sunny all day long."] * 9)
    resp = await service.client.patch(
        f"/v1/memories/{second['id']}",
        json={"content": long_reply, "expected_version": 1},
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    fulltext = {"vector": None, "fulltext": {"weight": 1, "depth": 10}}
    body = await search(service, cube, query="pottery workshop", config=fulltext)
    # The next turns still carry the question in their context; the long reply does not.
    assert contents(body) == [first["content"], "Did you make anything there?"]


def dated(content: str, when: str, **extra: Any) -> dict[str, Any]:
    return {"content": content, "sources": [{"speaker": "Ann", "occurred_at": when}], **extra}


async def test_time_channel_finds_named_month(service: Service) -> None:
    cube = await make_cube(service, "time")
    await add(
        service,
        cube,
        dated("Went hiking in the mountains", "2023-04-20T10:00:00Z"),
        dated("Started a pottery class", "2023-05-07T10:00:00Z"),
        dated("Adopted a puppy named Biscuit", "2023-05-28T10:00:00Z"),
        dated("Flew to Lisbon for a conference", "2023-06-02T10:00:00Z"),
    )
    only_time = {"vector": None, "fulltext": None, "time": {"weight": 1, "depth": 10}}
    body = await search(service, cube, query="What did Ann do in May 2023?", config=only_time)
    assert sorted(contents(body)) == ["Adopted a puppy named Biscuit", "Started a pottery class"]
    week = await search(
        service, cube, query="the last week of May 2023", config=only_time, explain=True
    )
    assert contents(week) == ["Adopted a puppy named Biscuit"]
    assert set(week["results"][0]["explain"]) == {"time"}
    hybrid = await search(service, cube, query="What did Ann do in May 2023?", explain=True)
    assert set(contents(hybrid)[:2]) == {"Adopted a puppy named Biscuit", "Started a pottery class"}
    assert all("time" in r["explain"] for r in hybrid["results"][:2])
    none = await search(service, cube, query="What did Ann do?", config=only_time)
    assert none["results"] == []


async def test_as_of(service: Service) -> None:
    cube = await make_cube(service, "asof")
    await add(
        service,
        cube,
        {
            "content": "Ann lives in Paris",
            "valid_from": "2020-01-01T00:00:00Z",
            "valid_to": "2023-01-01T00:00:00Z",
        },
        {"content": "Ann lives in Berlin", "valid_from": "2023-01-01T00:00:00Z"},
        {"content": "Ann lives in Rome", "valid_from": "2030-01-01T00:00:00Z"},
    )
    query = {"query": "Where does Ann live?", "config": ALL_CHANNELS}
    everything = await search(service, cube, **query)
    assert len(everything["results"]) == 3
    # Now: Paris is no longer valid, Rome not yet.
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    now = await search(service, cube, **query, as_of=soon)
    assert contents(now) == ["Ann lives in Berlin"]
    # Every memory was created after this instant: nothing was known then.
    past = await search(service, cube, **query, as_of="2021-06-01T00:00:00Z")
    assert past["results"] == []


async def test_filters_hold_in_every_channel(service: Service) -> None:
    cube = await make_cube(service, "filters")
    await add(
        service,
        cube,
        dated("Bob bought a red bicycle", "2023-05-03T00:00:00Z", user_id="bob", tags=["t"]),
        dated("Eve bought a red bicycle", "2023-05-03T00:00:00Z", user_id="eve", tags=["t"]),
        dated("Bob sold his red bicycle", "2023-05-09T00:00:00Z", user_id="bob", kind="event"),
    )
    for filters, expected in [
        ({"user_id": "bob"}, {"Bob bought a red bicycle", "Bob sold his red bicycle"}),
        ({"tags": ["t"]}, {"Bob bought a red bicycle", "Eve bought a red bicycle"}),
        ({"kinds": ["event"]}, {"Bob sold his red bicycle"}),
    ]:
        for channel in ("vector", "fulltext", "time"):
            config = {channel: ALL_CHANNELS[channel]} | {
                c: None for c in ("vector", "fulltext", "time") if c != channel
            }
            body = await search(
                service, cube, query="red bicycle in May 2023", config=config, filters=filters
            )
            assert set(contents(body)) == expected, (channel, filters)


async def test_exact_path_returns_true_nearest(service: Service, runtime: Any) -> None:
    cube = await make_cube(service, "exact")
    texts = [f"note {i}: {t}" for i, t in enumerate(FACTS * 5)]
    await add(service, cube, *({"content": t} for t in texts))
    query = "a dessert made with apples and spices"
    vecs = runtime.embed_sync(texts)
    q = await runtime.embed_query(query)  # the query path (the int8 graph by default)
    expected = [texts[i] for i in np.argsort(-(vecs @ q), kind="stable")[:10]]
    body = await search(service, cube, query=query, preset="fast", explain=True)
    assert body["exact"] is True
    assert contents(body)[0] == expected[0]
    assert set(contents(body)) == set(expected)
    scores = [r["explain"]["vector"]["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(float(np.max(vecs @ q)), abs=1e-4)


@pytest.mark.parametrize("preset", ["fast", "hybrid"])
async def test_prebuilt_and_built_statements_agree(
    service: Service, runtime: Any, preset: str
) -> None:
    """A search without filters runs the vector statement built once with bound
    parameters; one with a filter that lets everything through builds it per search.
    Same memories, same order, same scores, validity at ``now`` included."""
    cube = await make_cube(service, f"prebuilt-{preset}")
    texts = [f"note {i}: {t}" for i, t in enumerate(FACTS * 3)]
    await add(service, cube, *({"content": t} for t in texts))
    superseded = {"content": "Melanie painted a sunset", "valid_to": "2020-01-01T00:00:00Z"}
    await add(service, cube, superseded)
    query = "who painted the lake at sunrise?"
    plain = await search(service, cube, query=query, preset=preset, explain=True, top_k=20)
    built = await search(
        service,
        cube,
        query=query,
        preset=preset,
        explain=True,
        top_k=20,
        filters={"created_before": "2999-01-01T00:00:00Z"},
    )
    assert len(plain["results"]) == 19
    pairs = [(r["memory"]["id"], round(r["score"], 6)) for r in plain["results"]]
    assert pairs == [(r["memory"]["id"], round(r["score"], 6)) for r in built["results"]]
    # The superseded memory is found, below the statements still valid.
    sunset = contents(plain).index("Melanie painted a sunset")
    assert contents(plain)[0] != "Melanie painted a sunset" and sunset > 0


async def test_now_reads_relative_phrases_and_prefers_what_is_valid_then(
    service: Service,
) -> None:
    cube = await make_cube(service, "now")
    await add(
        service,
        cube,
        dated("Went to a pottery class with Mel", "2023-05-27T10:00:00Z"),  # a Saturday
        dated("Went to a climbing class with Mel", "2023-05-20T10:00:00Z"),
        dated("Lives in Boston", "2022-01-10T10:00:00Z", valid_to="2023-03-01T00:00:00Z"),
        dated("Lives in Denver", "2023-03-01T10:00:00Z", valid_from="2023-03-01T00:00:00Z"),
    )
    time_only = {"vector": None, "fulltext": None, "time": {"weight": 1, "depth": 10}}
    asked = "2023-05-30T23:40:00Z"
    body = await search(service, cube, query="the class last Saturday", config=time_only, now=asked)
    assert contents(body) == ["Went to a pottery class with Mel"]
    # Without ``now`` the phrase is read against today's date: no memory falls in it.
    assert (
        contents(await search(service, cube, query="the class last Saturday", config=time_only))
        == []
    )

    # The statement valid at ``now`` ranks first; the superseded one is still found.
    where = await search(service, cube, query="Where does Ann live? Boston", now=asked)
    assert contents(where)[0] == "Lives in Denver" and "Lives in Boston" in contents(where)
    # Asked in 2022, the Boston memory was the valid one.
    then = await search(
        service, cube, query="Where does Ann live? Boston", now="2022-06-01T00:00:00Z"
    )
    assert contents(then)[0] == "Lives in Boston"


async def test_now_is_a_validated_timestamp(service: Service) -> None:
    cube = await make_cube(service, "now-bad")
    for bad in ("yesterday", "0001-01-01T00:00:00+14:00", 10**30):
        resp = await service.client.post(
            f"/v1/cubes/{cube}/search", json={"query": "x", "now": bad}, headers=service.auth()
        )
        assert_error(resp, 422)


async def test_context_keeps_the_speaker_of_an_enriched_turn(
    service: Service, database_url: str
) -> None:
    """Enrichment writes a version without sources; the turn's speaker still heads its line
    in the context of the turns after it (as when both arrive before enrichment runs)."""
    from tests.graph.helpers import sql, versions, worker_for

    cube = await make_cube(service, "enriched")
    first, second = turns("s1", "2023-05-08")[:2]
    [m1] = await add(service, cube, first)
    await worker_for(service).run_until_idle()
    assert len(await versions(service, m1["id"])) > 1  # enriched: a version without sources
    [m2] = await add(service, cube, second)
    [(index_text,)] = sql(database_url, "SELECT index_text FROM memory WHERE id = :m", m=m2["id"])
    assert "Mel: When did you go to the pottery workshop?" in index_text


@pytest.mark.parametrize("preset", ["fast", "hybrid"])
async def test_results_carry_their_own_sources_as_a_read_does(
    service: Service, preset: str
) -> None:
    """A search reads its results' rows and sources in one statement: each result has its
    own sources (every version's, in the order they occurred), exactly as GET shows them."""
    cube = await make_cube(service)
    made = await add(
        service,
        cube,
        *(
            {
                "content": f"{who} talked about the {thing} garden",
                "sources": [
                    {"speaker": who, "external_id": f"{who}-{i}", "occurred_at": at, "text": t}
                    for i, (at, t) in enumerate(times)
                ],
            }
            for who, thing, times in [
                (
                    "Ann",
                    "rose",
                    [("2023-05-02T10:00:00Z", "later"), ("2023-05-01T10:00:00Z", "first")],
                ),
                ("Bob", "herb", [("2023-06-01T10:00:00Z", "only")]),
                ("Cy", "rock", []),
            ]
        ),
    )
    body = await search(service, cube, query="garden", preset=preset, top_k=10)
    assert {r["memory"]["id"] for r in body["results"]} == {m["id"] for m in made}
    for r in body["results"]:
        read = await service.client.get(f"/v1/memories/{r['memory']['id']}", headers=service.auth())
        assert r["memory"]["sources"] == read.json()["sources"]
    by_speaker = {
        r["memory"]["content"].split()[0]: r["memory"]["sources"] for r in body["results"]
    }
    assert [s["text"] for s in by_speaker["Ann"]] == ["first", "later"]
    assert [s["speaker"] for s in by_speaker["Bob"]] == ["Bob"]
    assert by_speaker["Cy"] == []


async def test_server_timing_names_the_phases(service: Service, cube: str) -> None:
    """Every answer says where its time went: SQL (and how many statements), the query
    embedding, the whole request. A warm ``fast`` search takes four statements: the
    tenant's scope, the cube, the nearest memories with their validity, the rows with
    their sources."""
    await search(service, cube, query="warm the key and limit caches", preset="fast")
    resp = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": "apple pie", "preset": "fast"},
        headers=service.auth(),
    )
    timing = dict(
        (part.split(";")[0].strip(), part) for part in resp.headers["server-timing"].split(",")
    )
    assert set(timing) == {"db", "embed", "app"}
    assert 'desc="4 statements"' in timing["db"]
    missing = await service.client.get("/v1/cubes/nope", headers=service.auth())
    assert missing.status_code == 422 and "app;dur=" in missing.headers["server-timing"]


async def test_lexical_channel_apart_ranks_as_in_the_search_transaction(
    service: Service, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a way to open another transaction (the API's), hybrid runs the lexical channel
    on a connection of its own while the vector channel runs; without one (``reopen``
    None), both run in the search's transaction. Same channels, same rankings."""
    import uuid

    from sqlalchemy import select

    from memsvc.retrieval import presets
    from memsvc.retrieval.search import search as run
    from memsvc.schemas import SearchRequest
    from memsvc.store.models import Cube

    cube = await make_cube(service, "apart")
    await add(service, cube, *({"content": f"{t} (take {i})"} for i, t in enumerate(FACTS * 4)))
    state = service.app.state.memsvc  # type: ignore[attr-defined]
    async with state.db.transaction() as session:
        tenant = (await session.execute(select(Cube.tenant_id).where(Cube.id == cube))).scalar_one()
    request = SearchRequest(query="charity race for Melanie", preset="hybrid", explain=True)
    name, config = presets.resolve(request.preset, None)
    vec = await runtime.embed_query(request.query)
    from memsvc.retrieval import search as search_module

    apart = []
    original = search_module._fulltext_apart

    async def counted(*args: Any) -> Any:
        apart.append(1)
        return await original(*args)

    monkeypatch.setattr(search_module, "_fulltext_apart", counted)
    # Two connections in the pool, idle again after: the second transaction of a search
    # need not open one.
    async with state.db.transaction() as one, state.db.transaction() as two:
        await one.execute(select(1))
        await two.execute(select(1))
    bodies = []
    for reopen in (None, lambda: state.db.tenant_transaction(tenant)):
        async with state.db.tenant_transaction(tenant) as session:
            response = await run(
                session,
                tenant_id=tenant,
                cube_id=uuid.UUID(cube),
                request=request,
                config=config,
                preset=name,
                query_vec=vec,
                reopen=reopen,
            )
        bodies.append(
            [(r.memory.id, r.score, sorted((r.explain or {}).items())) for r in response.results]
        )
    assert apart == [1]  # the second search ran the lexical channel apart
    assert bodies[0] == bodies[1]
    assert any("fulltext" in dict(explain) for _, _, explain in bodies[0])
