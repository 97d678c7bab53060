"""Episodic and semantic summaries: written by the debounced ``summarise`` job, versioned,
with provenance to exactly their members, kept out of plain lists and search, scrubbed by a
privacy erase, LLM-written with a scripted model (and extractive when its output is bad)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from memsvc.config import JobSettings, LLMSettings, Settings
from memsvc.graph.summarise import EXTRACTIVE_POLICY, LLM_POLICY
from memsvc.jobs.worker import Worker
from memsvc.llm import LiteLLM
from memsvc.llm.fake import Registered, registered
from memsvc.store import summaries
from tests.api.helpers import add, assert_error, make_cube
from tests.conftest import Service
from tests.graph.helpers import app_state, sql, versions, worker_for

pytestmark = pytest.mark.anyio

DAY = "2023-05-08T10:00:00Z"


def turn(content: str, session: str, speaker: str, minute: int, **extra: Any) -> dict[str, Any]:
    return {
        "content": content,
        "session_id": session,
        "sources": [{"speaker": speaker, "occurred_at": f"2023-05-08T10:{minute:02d}:00Z"}],
        **extra,
    }


async def settle(worker: Worker, database_url: str) -> None:
    """Run every job, the debounced summarise jobs at once instead of ``DEBOUNCE_S`` later."""
    for _ in range(3):
        sql(database_url, "UPDATE job SET run_after = now() WHERE status = 'queued'")
        if not await worker.run_until_idle():
            return


async def listed(svc: Service, cube: str, **params: Any) -> list[dict[str, Any]]:
    resp = await svc.client.get(f"/v1/cubes/{cube}/memories", params=params, headers=svc.auth())
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


async def summaries_of(svc: Service, cube: str, layer: str = "episodic") -> list[dict[str, Any]]:
    return [m for m in await listed(svc, cube, kind="summary") if m["layer"] == layer]


async def provenance(svc: Service, memory_id: str) -> list[dict[str, Any]]:
    resp = await svc.client.get(f"/v1/memories/{memory_id}/provenance", headers=svc.auth())
    assert resp.status_code == 200, resp.text
    return list(resp.json()["versions"])


async def at_now(svc: Service, items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(id, current version) of memories."""
    out = []
    for m in items:
        resp = await svc.client.get(f"/v1/memories/{m['id']}", headers=svc.auth())
        out.append((m["id"], resp.json()["version"]))
    return out


def covered(version: dict[str, Any]) -> list[tuple[str, int]]:
    return [(m["memory_id"], m["version"]) for m in version["summarises"]]


async def search(svc: Service, cube: str, query: str, **filters: Any) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"query": query, "top_k": 50}
    if filters:
        body["filters"] = filters
    resp = await svc.client.post(f"/v1/cubes/{cube}/search", json=body, headers=svc.auth())
    assert resp.status_code == 200, resp.text
    return [r["memory"] for r in resp.json()["results"]]


CHAT = [
    ("Hi Melanie, how are you?", "Caroline"),
    ("I adopted a golden retriever named Max on 3 May 2023 in Lisbon.", "Caroline"),
    ("Lovely! I will visit you and Max in June.", "Melanie"),
]


async def test_episodic_summary_versions_provenance_and_filters(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service)
    # A burst of writes to one thread, one request each: one job for the thread (and one
    # for the cube's clusters), not one per write.
    mine = []
    for i, (text, who) in enumerate(CHAT):
        mine += await add(service, cube, turn(text, "s1", who, i))
    jobs = sql(
        database_url,
        "SELECT payload->>'scope', run_after > now() FROM job WHERE kind = 'summarise' ORDER BY 1",
    )
    assert [tuple(j) for j in jobs] == [('["session", "s1"]', True), ("semantic", True)]
    worker = worker_for(service)
    assert await worker.run_until_idle() == 3  # the enrichments; summaries wait out the debounce
    assert await summaries_of(service, cube) == []
    await settle(worker, database_url)

    [summary] = await summaries_of(service, cube)
    assert (summary["kind"], summary["layer"], summary["session_id"]) == (
        "summary",
        "episodic",
        "s1",
    )
    assert summary["enrichment_status"] == "skipped"
    assert summary["content"].splitlines() == [
        "Caroline, Melanie; 8 May 2023:",
        "Caroline: Hi Melanie, how are you?",
        "Caroline: I adopted a golden retriever named Max on 3 May 2023 in Lisbon.",
        "Melanie: Lovely!",
        "Melanie: I will visit you and Max in June.",
    ]
    assert summary["valid_from"] == "2023-05-08T10:00:00Z"
    assert summary["metadata"]["summary"]["members"] == 3
    [v1] = await provenance(service, summary["id"])
    assert covered(v1) == await at_now(service, mine)
    assert (v1["actor"], v1["policy"], v1["model"]) == ("system:summarise", EXTRACTIVE_POLICY, None)
    # No enrichment of the summary, and summaries do not queue summarising.
    n = sql(
        database_url, "SELECT count(*) FROM job WHERE payload->>'memory_id' = :m", m=summary["id"]
    )
    assert n[0][0] == 0
    assert sql(database_url, "SELECT count(*) FROM job WHERE status = 'queued'")[0][0] == 0

    # Plain list and search leave summaries out; asked for, they are in.
    assert [m["id"] for m in await listed(service, cube)] == [m["id"] for m in mine]
    every = [m["id"] for m in await listed(service, cube, kind="summary")]
    assert summary["id"] in every  # with the cube's semantic (cluster) summary
    both = await listed(service, cube, include_summaries="true")
    assert [m["id"] for m in both] == [m["id"] for m in mine] + every
    assert not set(every) & {m["id"] for m in await search(service, cube, "Max Lisbon")}
    only = await search(service, cube, "Max Lisbon", kinds=["summary"])
    assert sorted(m["id"] for m in only) == sorted(every)
    found = await search(service, cube, "Max Lisbon", include_summaries=True)
    assert {m["id"] for m in found} == {*every, *(m["id"] for m in mine)}

    # A new turn: a new version of the same summary, covering exactly the four.
    [late] = await add(service, cube, turn("Max turned 2 on 7 May.", "s1", "Caroline", 9))
    await settle(worker, database_url)
    [again] = await summaries_of(service, cube)
    assert (again["id"], again["version"]) == (summary["id"], 2)
    history = await provenance(service, summary["id"])
    members_now = [*(m["id"] for m in mine), late["id"]]
    assert [m for m, _ in covered(history[1])] == members_now
    assert covered(history[0]) == covered(v1)
    assert (await versions(service, summary["id"]))[0]["content"] == summary["content"]

    # Delete / restore a member: the window is summarised again without / with it.
    resp = await service.client.delete(f"/v1/memories/{mine[1]['id']}", headers=service.auth())
    assert resp.status_code == 204
    await settle(worker, database_url)
    [after] = await summaries_of(service, cube)
    assert "golden retriever" not in after["content"]
    assert [m for m, _ in covered((await provenance(service, summary["id"]))[-1])] == [
        mine[0]["id"],
        mine[2]["id"],
        late["id"],
    ]
    resp = await service.client.post(
        f"/v1/memories/{mine[1]['id']}/restore", headers=service.auth()
    )
    assert resp.status_code == 200
    await settle(worker, database_url)
    [restored] = await summaries_of(service, cube)
    assert "golden retriever" in restored["content"]

    # The look-ups ask uses.
    async with app_state(service).db.transaction() as s:
        win = await summaries.windows_of(s, [uuid.UUID(late["id"]), uuid.UUID(summary["id"])])
        got = await summaries.members(s, [uuid.UUID(summary["id"]), uuid.UUID(late["id"])])
    semantic = {uuid.UUID(m["id"]) for m in await summaries_of(service, cube, layer="semantic")}
    assert list(win) == [uuid.UUID(late["id"])]  # a summary is in no window
    assert win[uuid.UUID(late["id"])][0] == uuid.UUID(summary["id"])  # episodic first
    assert set(win[uuid.UUID(late["id"])][1:]) <= semantic
    assert got == {uuid.UUID(summary["id"]): [uuid.UUID(m) for m in members_now]}


async def test_only_changed_threads_are_summarised_again(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service)
    await add(service, cube, *(turn(t, "a", w, i) for i, (t, w) in enumerate(CHAT)))
    await add(
        service, cube, *(turn(f"Talk {i} about the 2024 budget.", "b", "Bob", i) for i in range(25))
    )
    worker = worker_for(service)
    await settle(worker, database_url)
    by_session = {
        (m["session_id"], m["metadata"]["summary"]["window"]): m
        for m in await summaries_of(service, cube)
    }
    assert sorted(by_session) == [("a", 0), ("b", 0), ("b", 1)]
    assert [by_session[k]["metadata"]["summary"]["members"] for k in sorted(by_session)] == [
        3,
        20,
        5,
    ]

    await add(service, cube, turn("Max loves the beach.", "a", "Caroline", 30))
    await settle(worker, database_url)
    now = {
        (m["session_id"], m["metadata"]["summary"]["window"]): m
        for m in await summaries_of(service, cube)
    }
    assert {k: m["version"] for k, m in now.items()} == {("a", 0): 2, ("b", 0): 1, ("b", 1): 1}
    results = sql(
        database_url,
        "SELECT result FROM job WHERE kind = 'summarise' AND payload->>'scope' = :k "
        "ORDER BY id DESC LIMIT 1",
        k='["session", "a"]',
    )
    assert results[0][0]["written"] == [now[("a", 0)]["id"]]

    # A summary a client deleted stays deleted when its window changes.
    gone = now[("b", 1)]
    resp = await service.client.delete(f"/v1/memories/{gone['id']}", headers=service.auth())
    assert resp.status_code == 204
    await add(service, cube, turn("One more word on the budget.", "b", "Bob", 40))
    await settle(worker, database_url)
    after = {
        (m["session_id"], m["metadata"]["summary"]["window"])
        for m in await summaries_of(service, cube)
    }
    assert after == {("a", 0), ("b", 0)}
    assert [v["change_kind"] for v in await versions(service, gone["id"])] == ["create", "delete"]


async def test_erase_of_a_member_leaves_no_copy_in_any_summary(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service)
    secret = "My locker code at Zanzibar Gym is 4417."
    mem = await add(
        service,
        cube,
        turn("Hi there Bob!", "s", "Ann", 0),
        turn(secret, "s", "Ann", 1),
        turn("Noted, Ann.", "s", "Bob", 2),
    )
    worker = worker_for(service)
    await settle(worker, database_url)
    [summary] = await summaries_of(service, cube)
    assert "Zanzibar" in summary["content"]
    # An ask that found the summary keeps a trace naming it (and quoting what it found).
    asked = await service.client.post(
        f"/v1/cubes/{cube}/ask",
        json={"question": "Zanzibar locker code?", "filters": {"kinds": ["summary"]}},
        headers=service.auth(),
    )
    assert asked.status_code == 200, asked.text
    found = {e["memory"]["id"]: e["memory"]["kind"] for e in asked.json()["evidence"]}
    assert summary["id"] in found and set(found.values()) == {"summary"}, found
    trace_url = f"/v1/traces/{asked.json()['trace_id']}"
    assert (await service.client.get(trace_url, headers=service.auth())).status_code == 200
    await service.client.patch(
        f"/v1/memories/{mem[2]['id']}",
        json={"expected_version": 1, "content": "Noted, Ann. See you at 6."},
        headers=service.auth(),
    )
    await settle(worker, database_url)
    assert (await summaries_of(service, cube))[0]["version"] == 2

    resp = await service.client.delete(
        f"/v1/memories/{mem[1]['id']}?hard=true", headers=service.auth()
    )
    assert resp.status_code == 204

    def copies() -> int:
        q = (
            "SELECT (SELECT count(*) FROM memory_version WHERE content LIKE '%Zanzibar%')"
            " + (SELECT count(*) FROM memory WHERE content LIKE '%Zanzibar%'"
            "    OR index_text LIKE '%Zanzibar%')"
        )
        return int(sql(database_url, q)[0][0])

    assert copies() == 0
    assert (await service.client.get(trace_url, headers=service.auth())).status_code == 404
    # Until the job runs again the blanked summary is out of search and lists.
    assert await summaries_of(service, cube) == []
    await settle(worker, database_url)
    assert copies() == 0
    [rebuilt] = await summaries_of(service, cube)
    assert rebuilt["id"] == summary["id"] and rebuilt["content"].startswith("Ann, Bob; 8 May 2023:")
    history = await provenance(service, summary["id"])
    assert [v["change_kind"] for v in history] == ["create", "update", "erase", "restore", "update"]
    assert [m for m, _ in covered(history[-1])] == [mem[0]["id"], mem[2]["id"]]


class Script:
    """Replies by prompt; ``bad`` makes the summary replies unusable."""

    def __init__(self) -> None:
        self.bad = False

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        prompt = str(messages[-1]["content"])
        if "writing a summary" in prompt or (self.bad and "summary" in prompt):
            return (
                "Sure! A summary: they talked."
                if self.bad
                else json.dumps({"summary": "Caroline told Melanie about Max, her new dog."})
            )
        if "building a note" in prompt:
            return json.dumps({"keywords": ["Max"], "tags": ["pets"], "context": "A dog."})
        return json.dumps({"links": [], "evolutions": []})


@pytest.fixture
def script() -> Iterator[tuple[Script, Registered]]:
    s = Script()
    with registered(s) as reg:
        yield s, reg


def llm_worker(svc: Service, model: str) -> Worker:
    base = app_state(svc).settings
    settings: Settings = base.model_copy(
        update={
            "llm": LLMSettings(model=model, max_retries=1),
            "jobs": JobSettings(backoff_base_s=0.0, poll_interval_s=0.05),
        }
    )
    return worker_for(svc, llm=LiteLLM(settings.llm), settings=settings)


async def test_llm_summary_and_fallback_on_malformed_output(
    service: Service, database_url: str, script: tuple[Script, Registered]
) -> None:
    s, reg = script
    worker = llm_worker(service, reg.model)
    cube = await make_cube(service)
    mine = await add(service, cube, *(turn(t, "s1", w, i) for i, (t, w) in enumerate(CHAT)))
    await settle(worker, database_url)
    [summary] = await summaries_of(service, cube)
    assert summary["content"] == "Caroline told Melanie about Max, her new dog."
    [v1] = await provenance(service, summary["id"])
    assert (v1["policy"], v1["model"], v1["reason"]) == (LLM_POLICY, reg.model, None)
    asked = [
        c for c in reg.handler.calls if "from one conversation" in str(c.messages[1]["content"])
    ]
    assert len(asked) == 1  # one call for the window (another for the cluster of the three)
    assert all(t in str(asked[0].messages[-1]["content"]) for t, _ in CHAT)

    s.bad = True
    before = len(reg.handler.calls)
    await add(service, cube, turn("Max turned 2 on 7 May.", "s1", "Caroline", 9))
    await settle(worker, database_url)
    [after] = await summaries_of(service, cube)
    assert after["version"] == 2
    assert after["content"].startswith("Caroline, Melanie; 8 May 2023:")  # extractive
    v2 = (await provenance(service, summary["id"]))[1]
    assert (v2["policy"], v2["model"]) == (EXTRACTIVE_POLICY, None)
    assert v2["reason"] == "llm fallback: invalid_llm_output"
    assert [m for m, _ in covered(v2)][:3] == [m["id"] for m in mine]
    summary_calls = [
        c
        for c in reg.handler.calls[before:]
        if "from one conversation" in str(c.messages[1]["content"])
    ]
    assert len(summary_calls) == 2  # the call and its one repair
    [result] = sql(
        database_url,
        "SELECT result FROM job WHERE kind = 'summarise' AND payload->>'scope' = :k "
        "ORDER BY id DESC LIMIT 1",
        k='["session", "s1"]',
    )
    assert result[0]["fallbacks"] == {"0": "invalid_llm_output"}


async def test_semantic_clusters_are_summarised_incrementally(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service)
    pets = [
        "Caroline's dog Max loves long walks in the park.",
        "Max the golden retriever chased a ball in the park.",
        "Caroline takes her dog Max to the park every morning.",
    ]
    pottery = [
        "Melanie made a clay bowl in her pottery class.",
        "Melanie's pottery class fired the clay bowls in a kiln.",
        "Melanie glazed a clay vase at pottery class.",
    ]
    a = await add(
        service, cube, *({"content": t, "session_id": f"p{i}"} for i, t in enumerate(pets))
    )
    b = await add(
        service, cube, *({"content": t, "session_id": f"q{i}"} for i, t in enumerate(pottery))
    )
    worker = worker_for(service)
    await settle(worker, database_url)
    clusters = await summaries_of(service, cube, layer="semantic")
    groups = set()
    for c in clusters:
        [v] = await provenance(service, c["id"])
        assert len(covered(v)) == c["metadata"]["summary"]["members"]
        groups.add(frozenset(m for m, _ in covered(v)))
    assert groups == {frozenset(m["id"] for m in a), frozenset(m["id"] for m in b)}
    assert all(c["version"] == 1 for c in clusters)

    # A write elsewhere that joins no cluster: no cluster summary is written again.
    await add(service, cube, {"content": "The invoice total was 42 euros.", "session_id": "z"})
    await settle(worker, database_url)
    [result] = sql(
        database_url,
        "SELECT result FROM job WHERE kind = 'summarise' AND payload->>'scope' = 'semantic' "
        "ORDER BY id DESC LIMIT 1",
    )
    assert result[0]["written"] == [] and result[0]["unchanged"] == len(clusters)
    assert [c["version"] for c in await summaries_of(service, cube, layer="semantic")] == [
        1 for _ in clusters
    ]


async def test_reserved_kind_and_hostile_filters(service: Service) -> None:
    cube = await make_cube(service)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/memories",
        json={"memories": [{"content": "x", "kind": "summary"}]},
        headers=service.auth(),
    )
    assert_error(resp, 422, "reserved_kind")
    [m] = await add(service, cube, {"content": "plain"})
    resp = await service.client.patch(
        f"/v1/memories/{m['id']}",
        json={"expected_version": 1, "kind": "summary"},
        headers=service.auth(),
    )
    assert_error(resp, 422, "reserved_kind")
    for bad in ("\x00", "\ud800", "1" * 400, 10**30, "yes please"):
        resp = await service.client.post(
            f"/v1/cubes/{cube}/search",
            content=json.dumps({"query": "x", "filters": {"include_summaries": bad}}),
            headers={**service.auth(), "content-type": "application/json"},
        )
        assert 400 <= resp.status_code < 500, (bad, resp.text)
    for raw in ("%00", "%ED%A0%80", "1" * 400, "2"):
        resp = await service.client.get(
            f"/v1/cubes/{cube}/memories?include_summaries={raw}", headers=service.auth()
        )
        assert 400 <= resp.status_code < 500, (raw, resp.text)


async def test_imported_memories_are_summarised(service: Service, database_url: str) -> None:
    from tests.api.test_transfer import export, lines, send

    source = await make_cube(service, "source")
    await add(service, source, *(turn(t, "s1", w, i) for i, (t, w) in enumerate(CHAT)))
    records = await export(service, source)
    target = await make_cube(service, "target")
    await send(service, target, lines(records))
    queued = sql(
        database_url,
        "SELECT payload->>'scope' FROM job WHERE kind = 'summarise' AND payload->>'cube_id' = :c "
        "ORDER BY 1",
        c=target,
    )
    assert [q[0] for q in queued] == ['["session", "s1"]', "semantic"]
    await settle(worker_for(service), database_url)
    [summary] = await summaries_of(service, target)
    assert summary["metadata"]["summary"]["members"] == 3
