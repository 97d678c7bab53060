"""``POST /v1/cubes/{id}/ingest`` through the real app: every operation and layer end to end
(the ``llm`` policy against a scripted litellm provider, ``store_all`` and ``learned``),
provenance of each decision, the core block and its cap, async mode, idempotency, invalid
LLM output, bad input with nothing written, and tenant isolation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from memsvc.config import LLMSettings
from memsvc.llm import LiteLLM
from memsvc.llm.fake import registered
from tests.api.helpers import assert_error, make_cube, new_tenant_key
from tests.conftest import Service
from tests.graph.helpers import app_state, worker_for

pytestmark = pytest.mark.anyio

CHAT = [
    {"role": "user", "name": "Ann", "content": "I moved to Lisbon last spring for a new job."},
    {"role": "assistant", "content": "How are you finding Lisbon so far?"},
    {"role": "user", "name": "Ann", "content": "I love it, the light is amazing."},
    {"role": "user", "name": "Ann", "content": "thanks!"},
    {"role": "user", "name": "Ann", "content": "By the way, I am allergic to peanuts."},
]


def chat(session: str = "s1", day: int = 1) -> list[dict[str, Any]]:
    return [
        {
            **m,
            "session_id": session,
            "timestamp": f"2024-03-0{day}T10:0{i}:00Z",
            "external_id": f"{session}:{i}",
        }
        for i, m in enumerate(CHAT)
    ]


async def ingest(svc: Service, cube: str, key: str | None = None, **body: Any) -> dict[str, Any]:
    resp = await svc.client.post(f"/v1/cubes/{cube}/ingest", json=body, headers=svc.auth(key))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def get(svc: Service, path: str, key: str | None = None) -> Any:
    resp = await svc.client.get(path, headers=svc.auth(key))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def counts(svc: Service, cube: str) -> tuple[int, int]:
    """(memories of any status, decisions) of a cube."""
    mems = await get(svc, f"/v1/cubes/{cube}/memories?status=deleted&limit=1000")
    live = await get(svc, f"/v1/cubes/{cube}/memories?limit=1000")
    dec = await get(svc, f"/v1/cubes/{cube}/decisions?limit=1000")
    return len(mems["items"]) + len(live["items"]), len(dec["items"])


class Script:
    """Answers each ingest prompt with ``reply(prompt)``."""

    def __init__(self) -> None:
        self.reply: Callable[[str], str] = lambda prompt: "{}"
        self.prompts: list[str] = []
        self.client: LiteLLM | None = None

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        prompt = str(messages[-1]["content"])
        self.prompts.append(prompt)
        return self.reply(prompt)


@pytest.fixture
def llm(service: Service) -> Iterator[Script]:
    s = Script()
    with registered(s) as reg:
        state = app_state(service)
        state.llm = s.client = LiteLLM(
            LLMSettings(model=reg.model, max_retries=1, provider_retries=0)
        )
        try:
            yield s
        finally:
            state.llm = None


def short_id(prompt: str, text: str) -> str:
    """The id the prompt shows for the memory whose text starts with ``text``."""
    m = re.search(r"\[(m\d+)\][^\n]*\n\s*\"\"\"\n" + re.escape(text), prompt)
    assert m, prompt
    return m.group(1)


async def test_store_all_keeps_every_message_with_provenance(service: Service) -> None:
    cube = await make_cube(service)
    out = await ingest(service, cube, messages=chat(), policy="store_all", user_id="ann")
    assert out["policy"] == "store_all" and len(out["decisions"]) == len(CHAT)
    assert [d["operation"] for d in out["decisions"]] == ["insert"] * len(CHAT)
    assert {m["layer"] for m in out["memories"]} == {"episodic"}
    assert sorted(m["content"] for m in out["memories"]) == sorted(m["content"] for m in CHAT)
    first = out["decisions"][0]
    prov = await get(service, f"/v1/memories/{first['memory_id']}/provenance")
    [v1] = prov["versions"]
    assert v1["policy"] == "store_all@v1"
    assert [s["external_id"] for s in v1["sources"]] == ["s1:0"]
    assert [d["id"] for d in v1["decisions"]] == [first["id"]]
    assert v1["sources"][0]["id"] == first["source_id"]
    # Every decision is listed, with the features the learned policy trains on.
    listed = await get(service, f"/v1/cubes/{cube}/decisions?ingest_id={out['ingest_id']}")
    assert [d["message_index"] for d in listed["items"]] == list(range(len(CHAT)))


async def test_llm_policy_every_operation_and_layer(service: Service, llm: Script) -> None:
    cube = await make_cube(service)
    llm.reply = lambda p: json.dumps(
        {
            "operations": [
                {
                    "op": "memory_insert",
                    "message": [0, 1, 2],
                    "layer": "episodic",
                    "content": "Ann moved to Lisbon in spring 2023 for a new job and loves it.",
                    "reason": "a move and how she feels",
                },
                {"op": "skip", "message": [3], "reason": "thanks"},
                {
                    "op": "memory_insert",
                    "message": [4],
                    "layer": "core",
                    "content": "Allergic to peanuts.",
                    "reason": "health",
                },
            ]
        }
    )
    first = await ingest(service, cube, messages=chat(), policy="llm", user_id="ann")
    ops = [(d["operation"], d["layer"]) for d in first["decisions"]]
    assert ops == [
        ("insert", "episodic"),
        ("merge", "episodic"),
        ("merge", "episodic"),
        ("skip", None),
        ("insert", "core"),
    ]
    assert len(llm.prompts) == 1  # one call for the session's batch
    [event] = first["memories"]
    assert event["content"].startswith("Ann moved to Lisbon")
    assert [s["external_id"] for s in event["sources"]] == ["s1:0", "s1:1", "s1:2"]
    assert first["core"]["content"] == "Allergic to peanuts."
    assert first["decisions"][3]["memory_id"] is None  # skipped: source kept, no memory
    core = await get(service, f"/v1/cubes/{cube}/core?user_id=ann")
    assert [c["id"] for c in core["items"]] == [first["core"]["id"]]

    # Second session: a changed fact updates the stored memory, a retraction deletes it,
    # a new core line is added to the block as a new version.
    later = [
        {
            "role": "user",
            "name": "Ann",
            "content": "I actually moved on to Porto in May.",
            "session_id": "s2",
            "timestamp": "2024-06-01T09:00:00Z",
        },
        {"role": "user", "name": "Ann", "content": "I am vegetarian now.", "session_id": "s2"},
    ]

    def second(p: str) -> str:
        mid = short_id(p, "Ann moved to Lisbon")
        return json.dumps(
            {
                "operations": [
                    {
                        "op": "memory_update",
                        "message": [0],
                        "memory_id": mid,
                        "content": "Ann moved from Lisbon to Porto in May 2024.",
                        "reason": "moved",
                    },
                    {
                        "op": "memory_insert",
                        "message": [1],
                        "layer": "core",
                        "content": "Vegetarian.",
                        "reason": "diet",
                    },
                ]
            }
        )

    llm.reply = second
    out = await ingest(service, cube, messages=later, policy="llm", user_id="ann")
    upd, diet = out["decisions"]
    assert (upd["operation"], upd["target_id"], upd["memory_version"]) == ("update", event["id"], 2)
    versions = await get(service, f"/v1/memories/{event['id']}/versions")
    v1, v2 = versions["items"]
    assert v1["content"].startswith("Ann moved to Lisbon")  # the old text stays readable
    assert v2["content"] == "Ann moved from Lisbon to Porto in May 2024."
    assert v2["valid_from"].startswith("2024-06-01")
    prov = await get(service, f"/v1/memories/{event['id']}/provenance")
    assert [d["id"] for d in prov["versions"][1]["decisions"]] == [upd["id"]]
    assert [s["text"] for s in prov["versions"][1]["sources"]] == [later[0]["content"]]
    assert diet["operation"] == "update" and diet["target_id"] == first["core"]["id"]
    assert out["core"]["content"] == "Allergic to peanuts.\nVegetarian."
    assert out["core"]["version"] == 2

    # ask answers the asked scope's core block first.
    app_state(service).llm = None
    asked = await service.client.post(
        f"/v1/cubes/{cube}/ask",
        json={"question": "Where does Ann live?", "filters": {"user_id": "ann"}},
        headers=service.auth(),
    )
    assert asked.status_code == 200, asked.text
    assert [c["id"] for c in asked.json()["core"]] == [out["core"]["id"]]
    other_scope = await service.client.post(
        f"/v1/cubes/{cube}/ask",
        json={"question": "Where does Bob live?", "filters": {"user_id": "bob"}},
        headers=service.auth(),
    )
    assert other_scope.json()["core"] == []
    app_state(service).llm = llm.client

    llm.reply = lambda p: json.dumps(
        {
            "operations": [
                {
                    "op": "memory_delete",
                    "message": [0],
                    "memory_id": short_id(p, "Ann moved from Lisbon"),
                    "reason": "retracted",
                }
            ]
        }
    )
    gone = await ingest(
        service,
        cube,
        policy="llm",
        user_id="ann",
        messages=[{"role": "user", "content": "Forget where I live, please.", "session_id": "s3"}],
    )
    [d] = gone["decisions"]
    assert (d["operation"], d["target_id"]) == ("delete", event["id"])
    mem = await get(service, f"/v1/memories/{event['id']}")
    assert mem["status"] == "deleted" and mem["version"] == 3


async def test_merge_into_the_last_stored_memory_of_the_session(
    service: Service, llm: Script
) -> None:
    cube = await make_cube(service)
    llm.reply = lambda p: json.dumps(
        {
            "operations": [
                {
                    "op": "memory_insert",
                    "message": [0],
                    "layer": "semantic",
                    "content": "Ann adopted a cat named Miso.",
                    "reason": "pet",
                }
            ]
        }
    )
    first = await ingest(
        service,
        cube,
        policy="llm",
        messages=[{"role": "user", "content": "We adopted a cat, Miso!", "session_id": "s1"}],
    )
    [mem] = first["memories"]
    assert (mem["layer"], mem["kind"]) == ("semantic", "fact")
    llm.reply = lambda p: json.dumps(
        {
            "operations": [
                {
                    "op": "merge",
                    "message": [0],
                    "memory_id": short_id(p, "Ann adopted"),
                    "content": "Ann adopted a cat named Miso; Miso is a tabby.",
                    "reason": "continues",
                }
            ]
        }
    )
    out = await ingest(
        service,
        cube,
        policy="llm",
        messages=[{"role": "user", "content": "She is a tabby.", "session_id": "s1"}],
    )
    [d] = out["decisions"]
    assert (d["operation"], d["memory_id"], d["memory_version"]) == ("merge", mem["id"], 2)
    [merged] = out["memories"]
    assert merged["id"] == mem["id"] and "She is a tabby." in merged["content"]
    assert {s["text"] for s in merged["sources"]} == {"We adopted a cat, Miso!", "She is a tabby."}


async def test_a_live_agent_keeps_its_replies_apart_from_the_persons_turns(
    service: Service,
) -> None:
    """One request per message, as an agent writes while it talks: the ``learned`` policy
    folds each reply into the agent's memory of the session and each person's turn with
    little new into the person's, across requests (``store.ingest.thread_tail``)."""
    cube = await make_cube(service)
    turns = [
        ("user", "I adopted a puppy named Max from the shelter last Saturday."),
        ("assistant", "Congratulations! Here are ten tips for a puppy's first week at home."),
        ("user", "ok thanks, what food should he eat?"),
        ("assistant", "A food made for puppies, three small meals a day, fresh water always."),
    ]
    decided = []
    for i, (role, text) in enumerate(turns):
        out = await ingest(
            service,
            cube,
            policy="learned",
            messages=[
                {"role": role, "content": text, "session_id": "live", "external_id": f"t{i}"}
            ],
        )
        [d] = out["decisions"]
        decided.append((d["operation"], d["memory_id"]))
    ops = [op for op, _ in decided]
    assert ops == ["insert", "insert", "merge", "merge"]
    person, agent = decided[0][1], decided[1][1]
    assert person != agent and decided[2][1] == person and decided[3][1] == agent
    mems = {m["id"]: m for m in (await get(service, f"/v1/cubes/{cube}/memories"))["items"]}
    assert set(mems) == {person, agent}
    said = {mid: sorted(s["external_id"] for s in m["sources"]) for mid, m in mems.items()}
    assert said == {person: ["t0", "t2"], agent: ["t1", "t3"]}


async def test_invalid_llm_output_falls_back_visibly(service: Service, llm: Script) -> None:
    cube = await make_cube(service)
    llm.reply = lambda p: "I would rather not answer in JSON."
    out = await ingest(service, cube, messages=chat(), policy="llm")
    assert len(llm.prompts) == 2  # the call and its repair
    assert out["policy"] == "llm" and out["warnings"] and "llm policy failed" in out["warnings"][0]
    assert all("llm policy failed" in d["reason"] for d in out["decisions"])
    assert len(out["decisions"]) == len(CHAT)  # every message decided and kept as a source
    # Queued, the same failure is not papered over: the job fails and is retried, then parked.
    resp = await service.client.post(
        f"/v1/cubes/{cube}/ingest",
        json={"messages": chat("s9"), "policy": "llm", "async": True},
        headers=service.auth(),
    )
    assert resp.status_code == 202, resp.text
    worker = worker_for(service, llm=app_state(service).llm)
    while await worker.run_one():
        pass
    job = await get(service, f"/v1/jobs/{resp.json()['job_id']}")
    assert job["attempts"] == 1 and job["status"] == "queued"  # to be retried, then parked
    assert "invalid" in (job["last_error"] or "").lower()
    assert "s9:0" not in json.dumps(await get(service, f"/v1/cubes/{cube}/decisions?limit=1000"))


async def test_async_ingest_runs_on_the_queue(service: Service) -> None:
    cube = await make_cube(service)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/ingest",
        json={"messages": chat(), "policy": "store_all", "async": True},
        headers=service.auth(),
    )
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    await worker_for(service).run_until_idle()
    job = await get(service, f"/v1/jobs/{accepted['job_id']}")
    assert job["status"] == "done", job
    assert job["kind"] == "ingest"
    assert job["result"]["operations"] == {"insert": len(CHAT)}
    listed = await get(service, f"/v1/cubes/{cube}/decisions?ingest_id={accepted['ingest_id']}")
    assert len(listed["items"]) == len(CHAT)


async def test_idempotency_key_replays(service: Service) -> None:
    cube = await make_cube(service)
    body = {"messages": chat(), "policy": "store_all"}
    hdr = {**service.auth(), "Idempotency-Key": "ingest-1"}
    a = await service.client.post(f"/v1/cubes/{cube}/ingest", json=body, headers=hdr)
    b = await service.client.post(f"/v1/cubes/{cube}/ingest", json=body, headers=hdr)
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()
    assert await counts(service, cube) == (len(CHAT), len(CHAT))
    other = await service.client.post(
        f"/v1/cubes/{cube}/ingest", json={**body, "policy": "learned"}, headers=hdr
    )
    assert_error(other, 409, "idempotency_mismatch")


async def test_core_block_stays_under_its_cap(service: Service, llm: Script) -> None:
    app_state(service).settings.ingest.core_max_chars = 120
    cube = await make_cube(service)
    for n in range(8):
        llm.reply = lambda p, n=n: json.dumps(
            {
                "operations": [
                    {
                        "op": "memory_insert",
                        "message": [0],
                        "layer": "core",
                        "content": f"Standing goal number {n}: run {n + 3} kilometres daily.",
                        "reason": "goal",
                    }
                ]
            }
        )
        await ingest(
            service,
            cube,
            policy="llm",
            user_id="u",
            messages=[{"role": "user", "content": f"goal {n}"}],
        )
    [block] = (await get(service, f"/v1/cubes/{cube}/core?user_id=u"))["items"]
    assert len(block["content"]) <= 120
    assert block["content"].splitlines()[-1].startswith("Standing goal number 7")
    assert block["version"] >= 2


@pytest.mark.parametrize(
    ("messages", "status"),
    [
        ([], 422),
        ([{"role": "user", "content": ""}], 422),
        ([{"role": "user", "content": "   "}], 422),
        ([{"role": "narrator", "content": "hi"}], 422),
        ([{"role": "user", "content": 42}], 422),
        ([{"role": "user", "content": "a\u0000b"}], 422),
        ([{"role": "user", "content": "x", "timestamp": "99999-01-01T00:00:00Z"}], 422),
        ([{"role": "user", "content": "x", "session_id": "s" * 201}], 422),
        ([{"role": "user", "content": "x" * (33 * 1024)}], 413),
        ([{"role": "user", "content": "ok"}] * 1001, 422),
    ],
)
async def test_bad_messages_are_refused_with_nothing_written(
    service: Service, messages: list[Any], status: int
) -> None:
    cube = await make_cube(service)
    good = {"role": "user", "content": "I like tea."}
    resp = await service.client.post(
        f"/v1/cubes/{cube}/ingest",
        json={"messages": [good, *messages] if messages else [], "policy": "store_all"},
        headers=service.auth(),
    )
    assert_error(resp, status)
    assert await counts(service, cube) == (0, 0)


async def test_lone_surrogate_and_unknown_fields(service: Service) -> None:
    cube = await make_cube(service)
    raw = b'{"messages": [{"role": "user", "content": "bad \\ud800 text"}]}'
    resp = await service.client.post(
        f"/v1/cubes/{cube}/ingest",
        content=raw,
        headers={**service.auth(), "Content-Type": "application/json"},
    )
    assert_error(resp, 422)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/ingest",
        json={"messages": [{"role": "user", "content": "x"}], "polcy": "llm"},
        headers=service.auth(),
    )
    assert_error(resp, 422)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/ingest",
        json={"messages": [{"role": "user", "content": "x"}], "policy": "llm"},
        headers=service.auth(),
    )
    assert_error(resp, 422, "llm_not_configured")
    assert await counts(service, cube) == (0, 0)


async def test_tenants_are_isolated(service: Service) -> None:
    cube = await make_cube(service)
    out = await ingest(service, cube, messages=chat(), policy="store_all", user_id="ann")
    other = await new_tenant_key(service, "other")
    for resp in (
        await service.client.post(
            f"/v1/cubes/{cube}/ingest",
            json={"messages": chat()},
            headers=service.auth(other),
        ),
        await service.client.get(f"/v1/cubes/{cube}/core", headers=service.auth(other)),
        await service.client.get(f"/v1/cubes/{cube}/decisions", headers=service.auth(other)),
        await service.client.post(
            "/v1/feedback",
            json={"memory_ids": [out["memories"][0]["id"]], "signal": "used"},
            headers=service.auth(other),
        ),
    ):
        assert_error(resp, 404)
    mine = await make_cube(service, "mine", key=other)
    assert (await get(service, f"/v1/cubes/{mine}/decisions", key=other))["items"] == []
    policies = await get(service, "/v1/policies", key=other)
    learned = next(p for p in policies["items"] if p["name"] == "learned")
    assert [v["origin"] for v in learned["versions"]] == ["package"]


async def test_cube_default_policy(service: Service) -> None:
    resp = await service.client.post(
        "/v1/cubes", json={"name": "c", "write_policy": "store_all"}, headers=service.auth()
    )
    assert resp.status_code == 201, resp.text
    cube = resp.json()
    assert cube["write_policy"] == "store_all"
    out = await ingest(service, cube["id"], messages=chat())
    assert out["policy"] == "store_all"
    bad = await service.client.patch(
        f"/v1/cubes/{cube['id']}", json={"write_policy": "magic"}, headers=service.auth()
    )
    assert_error(bad, 422)


async def test_hard_erase_reaches_decisions_and_replays(service: Service) -> None:
    cube = await make_cube(service)
    body = {"messages": chat()[:2], "policy": "store_all"}
    hdr = {**service.auth(), "Idempotency-Key": "ingest-erase"}
    first = await service.client.post(f"/v1/cubes/{cube}/ingest", json=body, headers=hdr)
    assert first.status_code == 200, first.text
    gone, kept = first.json()["memories"]
    resp = await service.client.delete(
        f"/v1/memories/{gone['id']}?hard=true", headers=service.auth()
    )
    assert resp.status_code == 204, resp.text
    listed = await get(service, f"/v1/cubes/{cube}/decisions?memory_id={gone['id']}")
    assert [d["reason"] for d in listed["items"]] == [""]
    replay = await service.client.post(f"/v1/cubes/{cube}/ingest", json=body, headers=hdr)
    err = assert_error(replay, 410, "memory_erased")
    assert err["detail"] == {"erased": [gone["id"]], "kept": [kept["id"]]}
    assert CHAT[0]["content"] not in replay.text


TALK = [
    ("Ann", "I started a pottery class at the community center on Tuesday."),
    ("Bo", "haha nice"),
    ("Ann", "My sister Jess is visiting from Denver next month."),
    ("Bo", "ok"),
    ("Ann", "We adopted a rescue dog called Pepper in March."),
    ("Bo", "lol"),
    ("Ann", "The pottery teacher said my second bowl was the best in class."),
    ("Bo", "cool"),
    ("Ann", "I ran the Boston marathon in 3 hours 41 minutes last April."),
    ("Bo", "thanks"),
    ("Ann", "Jess and I are planning a road trip to Yosemite in June."),
    ("Bo", "sure"),
]


def talk(tag: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "name": who,
            "content": text,
            "session_id": f"{tag}-{i // 4}",
            "timestamp": f"2024-05-{1 + i // 4:02d}T10:{i:02d}:00Z",
            "external_id": f"{tag}:{i}",
        }
        for i, (who, text) in enumerate(TALK)
    ]


async def test_training_changes_decisions_activation_and_rollback(service: Service) -> None:
    cube = await make_cube(service)
    runs = []
    for n in range(3):
        out = await ingest(service, cube, messages=talk(f"t{n}"), policy="learned")
        runs.append(out)
    packaged = runs[0]["policy_version"]
    before = [d["operation"] for d in runs[0]["decisions"]]
    # Labels against what the packaged model thinks: the filler was what mattered.
    eval_set = [
        {"question": f"q{n}:{i}", "evidence": [f"t{n}:{i}"]}
        for n in range(3)
        for i in range(1, len(TALK), 2)
    ]
    resp = await service.client.post(
        "/v1/policies/learned/train",
        json={"cube_ids": [cube], "eval_set": eval_set, "activate": True},
        headers=service.auth(),
    )
    assert resp.status_code == 201, resp.text
    trained = resp.json()
    assert trained["policy"]["version"] == packaged + 1 and trained["policy"]["active"]
    assert trained["examples"] == 3 * len(TALK) and trained["positives"] == 3 * len(TALK) // 2
    assert trained["policy"]["metrics"]
    listed = await get(service, "/v1/policies")
    learned = next(p for p in listed["items"] if p["name"] == "learned")
    assert learned["active_version"] == packaged + 1
    assert [(v["version"], v["origin"], v["active"]) for v in learned["versions"]] == [
        (packaged, "package", False),
        (packaged + 1, "trained", True),
    ]
    fresh = await make_cube(service, "fresh")
    after = await ingest(service, fresh, messages=talk("t0"), policy="learned")
    assert after["policy_version"] == packaged + 1
    assert [d["operation"] for d in after["decisions"]] != before

    rolled = await service.client.post("/v1/policies/learned/rollback", headers=service.auth())
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["version"], rolled.json()["origin"]) == (packaged, "package")
    again = await ingest(service, await make_cube(service, "again"), messages=talk("t0"))
    assert again["policy_version"] == packaged
    assert [d["operation"] for d in again["decisions"]] == before
    assert_error(
        await service.client.post("/v1/policies/learned/rollback", headers=service.auth()),
        409,
        "nothing_to_roll_back",
    )
    # Activation by number, both ways; unknown versions and untrainable policies refused.
    act = await service.client.post(
        "/v1/policies/learned/activate", json={"version": packaged + 1}, headers=service.auth()
    )
    assert act.status_code == 200 and act.json()["active"], act.text
    assert_error(
        await service.client.post(
            "/v1/policies/learned/activate", json={"version": 99}, headers=service.auth()
        ),
        404,
    )
    assert_error(
        await service.client.post("/v1/policies/store_all/train", json={}, headers=service.auth()),
        422,
        "not_trainable",
    )
    assert_error(
        await service.client.post(
            "/v1/policies/learned/train",
            json={"cube_ids": [fresh], "eval_set": [{"question": "x", "evidence": ["nope"]}]},
            headers=service.auth(),
        ),
        422,
        "not_enough_training_data",
    )
    assert_error(
        await service.client.post("/v1/policies/magic/train", json={}, headers=service.auth()),
        422,
    )


async def test_feedback_labels_training_and_needs_no_admin(service: Service) -> None:
    cube = await make_cube(service)
    ids = []
    for tag in ("f", "g"):
        out = await ingest(service, cube, messages=talk(tag), policy="store_all")
        ids += [m["id"] for m in out["memories"]]
    member = await new_member_key(service)
    resp = await service.client.post(
        "/v1/feedback",
        json={"memory_ids": ids[::2], "signal": "used"},
        headers=service.auth(member),
    )
    assert resp.status_code == 201 and resp.json() == {"recorded": 12}, resp.text
    resp = await service.client.post(
        "/v1/feedback", json={"memory_ids": ids[1::2], "signal": "wrong"}, headers=service.auth()
    )
    assert resp.json() == {"recorded": 12}
    # Training is an admin's: a plain key is refused; the admin's run learns from feedback.
    assert_error(
        await service.client.post(
            "/v1/policies/learned/train", json={}, headers=service.auth(member)
        ),
        403,
    )
    trained = await service.client.post(
        "/v1/policies/learned/train", json={"cube_ids": [cube]}, headers=service.auth()
    )
    assert trained.status_code == 201, trained.text
    assert (trained.json()["examples"], trained.json()["positives"]) == (24, 12)
    assert not trained.json()["policy"]["active"]
    bad = await service.client.post(
        "/v1/feedback",
        json={"memory_ids": [ids[0], "00000000-0000-0000-0000-000000000000"], "signal": "used"},
        headers=service.auth(),
    )
    assert_error(bad, 404)


async def new_member_key(svc: Service) -> str:
    """A plain key of the admin's own tenant."""
    k = await svc.client.post("/v1/keys", json={"name": "member"}, headers=svc.auth())
    assert k.status_code == 201, k.text
    return str(k.json()["key"])
