"""The real SDK against the real app for ingest: sync over HTTP (uvicorn), async over ASGI
with the 202 path run by a worker; decisions, core, feedback and the policy endpoints."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from memsvc.sdk import (
    AsyncMemoryClient,
    Conflict,
    IngestMessage,
    MemoryClient,
    NotFound,
    ValidationFailed,
)
from tests.conftest import LiveServer, Service
from tests.graph.helpers import worker_for

CHAT = [
    {"role": "user", "name": "Ann", "content": "I moved to Lisbon last spring for a new job."},
    {"role": "assistant", "content": "How are you finding Lisbon so far?"},
    {"role": "user", "name": "Ann", "content": "I love it, the light is amazing."},
    {"role": "user", "name": "Ann", "content": "By the way, I am allergic to peanuts."},
]


def chat(session: str = "s1") -> list[dict[str, Any]]:
    return [
        {**m, "session_id": session, "external_id": f"{session}:{i}"} for i, m in enumerate(CHAT)
    ]


def test_sync_ingest_decisions_core_and_feedback(live_server: LiveServer) -> None:
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = client.create_cube("conversations")
        messages: list[IngestMessage | dict[str, Any]] = [
            *chat()[:-1],
            IngestMessage.model_validate(chat()[-1]),
        ]
        out = client.ingest(
            cube.id, messages, policy="store_all", user_id="ann", idempotency_key="conv-1"
        )
        assert (out.policy, [d.operation for d in out.decisions]) == ("store_all", ["insert"] * 4)
        assert [d.message_index for d in out.decisions] == [0, 1, 2, 3]
        assert sorted(m.content for m in out.memories) == sorted(m["content"] for m in CHAT)
        assert {(m.layer, m.user_id) for m in out.memories} == {("episodic", "ann")}
        # The same key: the same answer, nothing written twice.
        again = client.ingest(
            cube.id, messages, policy="store_all", user_id="ann", idempotency_key="conv-1"
        )
        assert again.ingest_id == out.ingest_id
        assert len(list(client.iter_memories(cube.id))) == 4

        page = client.list_decisions(cube.id, limit=3)
        assert [d.message_index for d in page.items] == [0, 1, 2] and page.next_cursor
        listed = list(client.iter_decisions(cube.id, ingest_id=out.ingest_id, page_size=3))
        assert [d.id for d in listed] == [d.id for d in out.decisions]
        first = out.decisions[0]
        assert first.memory_id is not None
        assert [d.id for d in client.list_decisions(cube.id, memory_id=first.memory_id).items] == [
            first.id
        ]
        assert client.list_decisions(cube.id, operation="skip").items == []

        assert client.get_core(cube.id, user_id="ann").items == []  # store_all writes episodic
        profile = client.add(
            cube.id, "Ann lives in Lisbon.", layer="core", kind="profile", user_id="ann"
        )
        assert [m.id for m in client.get_core(cube.id, user_id="ann").items] == [profile.id]
        assert client.get_core(cube.id, user_id="bob").items == []

        assert client.feedback([first.memory_id], "used").recorded == 1
        with pytest.raises(NotFound):
            client.feedback([uuid.uuid4()], "wrong")
        other = client.create_tenant("other")
        key = client.create_key(tenant_id=other.id, name="other-agent").key
    with MemoryClient(live_server.url, key) as foreign, pytest.raises(NotFound):
        foreign.feedback([first.memory_id], "irrelevant")


def test_sync_policy_endpoints(live_server: LiveServer) -> None:
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        policies = {p.name: p for p in client.list_policies().items}
        assert set(policies) == {"store_all", "learned", "llm"}
        assert not policies["store_all"].trainable and policies["learned"].trainable
        with pytest.raises(Conflict) as caught:
            client.rollback_policy("learned")
        assert caught.value.code == "nothing_to_roll_back"
        with pytest.raises(ValidationFailed):
            client.activate_policy("store_all", 1)
        with pytest.raises(ValidationFailed):
            client.train_policy("llm")


@pytest.mark.anyio
async def test_async_ingest_and_the_202_path(service: Service) -> None:
    transport = httpx.ASGITransport(app=service.app)  # type: ignore[arg-type]
    async with AsyncMemoryClient("http://memsvc", service.admin_key, transport=transport) as c:
        cube = await c.create_cube("async")
        now = await c.ingest(cube.id, chat("s1"), policy="store_all")
        assert [d.operation for d in now.decisions] == ["insert"] * 4
        accepted = await c.ingest_async(cube.id, chat("s2"), policy="store_all")
        assert accepted.status == "queued"
        assert (await c.list_decisions(cube.id, ingest_id=accepted.ingest_id)).items == []
        assert (await c.get_job(accepted.job_id)).status == "queued"
        await worker_for(service).run_until_idle()
        job = await c.get_job(accepted.job_id)
        assert (job.kind, job.status) == ("ingest", "done")
        assert job.result is not None and job.result["operations"] == {"insert": 4}
        later = [d async for d in c.iter_decisions(cube.id, ingest_id=accepted.ingest_id)]
        assert [d.message_index for d in later] == [0, 1, 2, 3]
        assert len([d async for d in c.iter_decisions(cube.id, page_size=3)]) == 8
        assert (await c.get_core(cube.id)).items == []
        with pytest.raises(Conflict):
            await c.rollback_policy("learned")
