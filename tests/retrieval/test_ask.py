"""ask in heuristic mode through the real app: the gate, probe cycles, budgets, the
deadline, traces, server-sent events, isolation, erasure and hostile input."""

from __future__ import annotations

import json
from typing import Any

import pytest

import memsvc.retrieval.ask as ask_loop
from tests.api.helpers import add, assert_error, make_cube, new_tenant_key
from tests.conftest import Service

pytestmark = pytest.mark.anyio

TURNS = [
    ("Caroline", "I have been researching adoption agencies for months now."),
    ("Melanie", "That is wonderful! Which one are you leaning towards?"),
    ("Caroline", "Hope House. They really support LGBTQ parents."),
    ("Melanie", "I painted a sunrise over the lake last weekend."),
    ("Caroline", "Your paintings always make me smile."),
    ("Melanie", "We went camping with the kids at the beach."),
]


async def conversation(svc: Service, cube: str, session: str = "s1") -> list[dict[str, Any]]:
    """One memory per turn, written one request a turn, as a live agent would."""
    out = []
    for i, (who, text) in enumerate(TURNS):
        [m] = await add(
            svc,
            cube,
            {
                "content": text,
                "kind": "message",
                "session_id": session,
                "sources": [
                    {
                        "kind": "message",
                        "speaker": who,
                        "text": text,
                        "occurred_at": f"2023-05-0{i + 1}T10:00:00Z",
                    }
                ],
            },
        )
        out.append(m)
    return out


async def ask(svc: Service, cube: str, key: str | None = None, **body: Any) -> dict[str, Any]:
    resp = await svc.client.post(f"/v1/cubes/{cube}/ask", json=body, headers=svc.auth(key))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def trace(svc: Service, trace_id: str, key: str | None = None) -> dict[str, Any]:
    resp = await svc.client.get(f"/v1/traces/{trace_id}", headers=svc.auth(key))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_a_covered_question_ends_at_the_gate(service: Service) -> None:
    cube = await make_cube(service)
    mems = await conversation(service, cube)
    body = await ask(service, cube, question="Is Caroline researching adoption agencies?")
    assert body["mode"] == "heuristic" and body["answer"] is None
    assert (body["cycles"], body["llm_calls"], body["tokens"], body["stopped"]) == (0, 0, 0, None)
    assert body["evidence"][0]["memory"]["id"] == mems[0]["id"]
    assert body["evidence"][0]["found_by"] == "Is Caroline researching adoption agencies?"
    assert body["evidence"][0]["memory"]["sources"][0]["speaker"] == "Caroline"
    assert len(body["evidence"]) == len(TURNS)  # top_k 10 > the cube
    t = await trace(service, body["trace_id"])
    assert [s["kind"] for s in t["steps"]] == ["retrieve", "gate", "select"]
    assert t["steps"][0]["note"] is None  # no reranker configured
    gate = t["steps"][1]
    assert gate["decision"] == "sufficient" and gate["missing"] == []
    assert {"name:caroline", "word:adoption"} <= set(gate["covered"])
    assert t["evidence_ids"] == [e["memory"]["id"] for e in body["evidence"]]
    assert t["question"] == "Is Caroline researching adoption agencies?"


async def test_missing_aspects_run_probe_cycles_until_the_budget(service: Service) -> None:
    cube = await make_cube(service)
    mems = await conversation(service, cube)
    body = await ask(
        service, cube, question="Which adoption agency did Caroline pick in Zanzibar?", top_k=3
    )
    # "zanzibar" is nowhere in the cube: the gate never passes; two cycles by default.
    assert (body["cycles"], body["stopped"]) == (2, "budget")
    t = await trace(service, body["trace_id"])
    kinds = [s["kind"] for s in t["steps"]]
    assert kinds == [
        "retrieve", "gate", "probe", "fold", "gate", "probe", "fold", "gate", "stop", "select"
    ]  # fmt: skip
    assert "name:zanzibar" in t["steps"][1]["missing"]
    probes = t["steps"][2]["queries"]
    assert probes and all("?" not in q for q in probes)
    ids = [e["memory"]["id"] for e in body["evidence"]]
    assert mems[0]["id"] in ids and len(ids) == 3
    assert all(e["why"] for e in body["evidence"])


async def test_probe_cycles_bring_in_the_turns_around_the_best_evidence(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ask_loop, "DEPTH", 1)  # each query brings one memory
    cube = await make_cube(service)
    mems = await conversation(service, cube)
    body = await ask(
        service,
        cube,
        question="Is Caroline researching adoption agencies in Zanzibar?",
        budget={"max_cycles": 1},
    )
    t = await trace(service, body["trace_id"])
    assert t["steps"][0]["found"] == [mems[0]["id"]]
    fold = next(s for s in t["steps"] if s["kind"] == "fold")
    # What was said next in the thread (turns 2 and 3) joined the pool.
    assert {mems[1]["id"], mems[2]["id"]} <= set(fold["found"])
    by_id = {e["memory"]["id"]: e for e in body["evidence"]}
    assert by_id[mems[2]["id"]]["found_by"] == "thread"


async def test_zero_cycles_and_the_deadline_stop_early(service: Service) -> None:
    cube = await make_cube(service)
    await conversation(service, cube)
    q = "Which adoption agency did Caroline pick in Zanzibar?"
    body = await ask(service, cube, question=q, budget={"max_cycles": 0})
    assert (body["cycles"], body["stopped"]) == (0, "budget")
    assert body["evidence"]
    body = await ask(service, cube, question=q, budget={"deadline_ms": 1})
    assert body["stopped"] == "deadline" and body["cycles"] == 0
    t = await trace(service, body["trace_id"])
    assert [s["kind"] for s in t["steps"]][-2:] == ["stop", "select"]


async def test_server_sent_events_stream_each_step_then_the_result(service: Service) -> None:
    cube = await make_cube(service)
    await conversation(service, cube)
    headers = {**service.auth(), "Accept": "text/event-stream"}
    q = {"question": "Which adoption agency did Caroline pick in Zanzibar?", "top_k": 3}
    async with service.client.stream(
        "POST", f"/v1/cubes/{cube}/ask", json=q, headers=headers
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = "".join([chunk async for chunk in resp.aiter_text()])
    events = [block.split("\n", 1) for block in raw.strip().split("\n\n")]
    names = [e[0].removeprefix("event: ") for e in events]
    data = [json.loads(e[1].removeprefix("data: ")) for e in events]
    assert names[-1] == "result" and set(names[:-1]) == {"step"}
    assert [d["kind"] for d in data[:-1]][:3] == ["retrieve", "gate", "probe"]
    assert data[-2]["kind"] == "select"
    result = data[-1]
    t = await trace(service, result["trace_id"])
    assert [s["kind"] for s in t["steps"]] == [d["kind"] for d in data[:-1]]
    assert [e["memory"]["id"] for e in result["evidence"]] == t["evidence_ids"]
    # A refused request is refused before the stream starts: a plain JSON error.
    bad = await service.client.post(
        f"/v1/cubes/{cube}/ask", json={"question": "x", "mode": "llm"}, headers=headers
    )
    assert_error(bad, 422)


async def test_filters_scope_the_evidence(service: Service) -> None:
    cube = await make_cube(service)
    await conversation(service, cube, "s1")
    other = await conversation(service, cube, "s2")
    body = await ask(
        service,
        cube,
        question="Which adoption agency did Caroline pick in Zanzibar?",
        filters={"session_id": "s2"},
    )
    got = {e["memory"]["id"] for e in body["evidence"]}
    assert got and got <= {m["id"] for m in other}


async def test_tenants_never_see_each_others_asks_or_traces(service: Service) -> None:
    cube = await make_cube(service)
    await conversation(service, cube)
    body = await ask(service, cube, question="Is Caroline researching adoption agencies?")
    other = await new_tenant_key(service, "other")
    r = await service.client.post(
        f"/v1/cubes/{cube}/ask", json={"question": "adoption"}, headers=service.auth(other)
    )
    assert_error(r, 404)
    r = await service.client.get(f"/v1/traces/{body['trace_id']}", headers=service.auth(other))
    assert_error(r, 404, "not_found")
    mine = await make_cube(service, "mine", key=other)
    r2 = await ask(service, mine, key=other, question="Is Caroline researching adoption?")
    assert r2["evidence"] == []


async def test_erasing_evidence_deletes_the_traces_that_name_it(service: Service) -> None:
    cube = await make_cube(service)
    mems = await conversation(service, cube)
    body = await ask(service, cube, question="Is Caroline researching adoption agencies?")
    await trace(service, body["trace_id"])
    r = await service.client.delete(
        f"/v1/memories/{mems[0]['id']}?hard=true", headers=service.auth()
    )
    assert r.status_code in (200, 204), r.text
    gone = await service.client.get(f"/v1/traces/{body['trace_id']}", headers=service.auth())
    assert_error(gone, 404)


async def test_budget_caps_server_and_tenant(service: Service) -> None:
    cube = await make_cube(service)
    r = await service.client.post(
        f"/v1/cubes/{cube}/ask",
        json={"question": "q", "budget": {"max_cycles": 9}},
        headers=service.auth(),
    )
    assert_error(r, 422)  # the schema's own bound
    r = await service.client.post(
        f"/v1/cubes/{cube}/ask",
        json={"question": "q", "budget": {"deadline_ms": 45_000}},
        headers=service.auth(),
    )
    err = assert_error(r, 422, "validation_error")
    assert err["detail"] == {"field": "budget.deadline_ms", "cap": 30_000}
    tenants = (await service.client.get("/v1/tenants", headers=service.auth())).json()["items"]
    tid = tenants[0]["id"]
    put = await service.client.put(
        f"/v1/tenants/{tid}/limits", json={"ask_max_cycles": 1}, headers=service.auth()
    )
    assert put.status_code == 200, put.text
    assert put.json()["effective"]["ask_max_cycles"] == 1
    r = await service.client.post(
        f"/v1/cubes/{cube}/ask",
        json={"question": "q", "budget": {"max_cycles": 2}},
        headers=service.auth(),
    )
    assert assert_error(r, 422)["detail"] == {"field": "budget.max_cycles", "cap": 1}
    body = await ask(service, cube, question="q zanzibar", budget={"max_cycles": 1})
    assert body["cycles"] <= 1


@pytest.mark.parametrize(
    "body",
    [
        {"question": "a\u0000b"},
        {"question": "\ud800"},
        {"question": ""},
        {"question": "x" * 8001},
        {"question": "q", "top_k": 2**63},
        {"question": "q", "top_k": 0},
        {"question": "q", "top_k": 10_000},
        {"question": "q", "budget": {"max_tokens": 2**70}},
        {"question": "q", "budget": {"max_llm_calls": -1}},
        {"question": "q", "budget": {"deadline_ms": 0}},
        {"question": "q", "budget": {"max_cycles": "3"}},
        {"question": "q", "now": "0000-01-01T00:00:00Z"},
        {"question": "q", "now": "9999-12-31T23:59:59-14:00"},
        {"question": "q", "mode": "oracle"},
        {"question": "q", "mode": "llm"},
        {"question": "q", "filters": {"kinds": ["a\u0000"]}},
        {"question": "q", "extra": 1},
        {"question": ["q"]},
    ],
)
async def test_hostile_asks_get_a_4xx(service: Service, body: dict[str, Any]) -> None:
    cube = await make_cube(service)
    raw = json.dumps(body, ensure_ascii=True)
    r = await service.client.post(
        f"/v1/cubes/{cube}/ask",
        content=raw,
        headers={**service.auth(), "Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text
    assert_error(r, r.status_code)


async def test_unknown_or_malformed_trace_ids(service: Service) -> None:
    r = await service.client.get(
        "/v1/traces/00000000-0000-0000-0000-000000000000", headers=service.auth()
    )
    assert_error(r, 404)
    r = await service.client.get("/v1/traces/not-a-uuid", headers=service.auth())
    assert_error(r, 422)


async def test_ask_reaches_the_summary_layers_and_their_members(
    service: Service, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.graph.helpers import worker_for
    from tests.graph.test_summaries import settle

    cube = await make_cube(service)
    mems = await conversation(service, cube)
    await settle(worker_for(service), database_url)
    q = "Is Caroline researching adoption agencies?"
    plain = await service.client.post(
        f"/v1/cubes/{cube}/search", json={"query": q, "top_k": 50}, headers=service.auth()
    )
    assert all(r["memory"]["kind"] != "summary" for r in plain.json()["results"])
    body = await ask(service, cube, question=q, top_k=20)
    layers = {e["memory"]["layer"] for e in body["evidence"] if e["memory"]["kind"] == "summary"}
    assert "episodic" in layers  # the session's window summary is evidence too
    # A probe cycle opens the summaries it found: their members join the pool.
    monkeypatch.setattr(ask_loop, "DEPTH", 1)
    q = "adoption agencies Hope House LGBTQ parents painted sunrise lake camping beach in Zanzibar"
    body = await ask(service, cube, question=q, top_k=20, budget={"max_cycles": 1})
    t = await trace(service, body["trace_id"])
    [top] = t["steps"][0]["found"]
    summary = await service.client.get(f"/v1/memories/{top}", headers=service.auth())
    assert summary.json()["kind"] == "summary"  # the window summary matches it best
    opened = {e["memory"]["id"] for e in body["evidence"] if e["found_by"] == "summary"}
    assert opened and opened <= {m["id"] for m in mems}
