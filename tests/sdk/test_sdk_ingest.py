"""Ingest, decisions, core, feedback and write policies in the SDK: what goes on the wire
and which calls are retried (the real app: ``tests/e2e/test_sdk_ingest_live.py``)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from memsvc.sdk import (
    Conflict,
    IngestMessage,
    InvalidResponse,
    MemoryClient,
    ServiceUnavailable,
    TransportError,
)

from .fakes import CUBE_ID, FakeServer, async_client, error, memory_json

INGEST_ID = uuid.UUID(int=7)
SOURCE_ID = uuid.UUID(int=9)
MEMORY_ID = uuid.UUID(int=1)


def decision_json(index: int = 0, **changes: Any) -> dict[str, Any]:
    """A DecisionRead as the server sends it."""
    body = {
        "id": index + 1,
        "message_index": index,
        "operation": "insert",
        "layer": "episodic",
        "memory_id": str(MEMORY_ID),
        "memory_version": 1,
        "source_id": str(SOURCE_ID),
        "reason": "store_all",
        "policy": "store_all",
        "policy_version": 1,
    }
    return {**body, **changes}


def ingested() -> dict[str, Any]:
    return {
        "ingest_id": str(INGEST_ID),
        "policy": "store_all",
        "policy_version": 1,
        "decisions": [decision_json()],
        "memories": [memory_json(layer="episodic")],
    }


def policy_version_json(version: int = 1) -> dict[str, Any]:
    return {"name": "learned", "version": version, "active": True, "origin": "package"}


def test_ingest_sends_the_messages_with_a_key_its_retries_reuse(
    client: MemoryClient, server: FakeServer
) -> None:
    server.reply(error(503, "unavailable"), httpx.ReadTimeout("slow")).json(200, ingested())
    out = client.ingest(
        CUBE_ID,
        [
            {"role": "user", "content": "I moved to Lisbon.", "name": "Ann"},
            IngestMessage(role="assistant", content="Nice!"),
        ],
        policy="store_all",
        user_id="ann",
    )
    assert out.ingest_id == INGEST_ID and [d.operation for d in out.decisions] == ["insert"]
    assert (server.last.method, server.last.url.path) == (
        "POST",
        f"/base/v1/cubes/{CUBE_ID}/ingest",
    )
    assert server.body() == {
        "messages": [
            {"role": "user", "content": "I moved to Lisbon.", "name": "Ann"},
            {"role": "assistant", "content": "Nice!"},
        ],
        "policy": "store_all",
        "user_id": "ann",
    }
    keys = {r.headers["Idempotency-Key"] for r in server.requests}
    assert len(server.requests) == 3 and len(keys) == 1
    uuid.UUID(keys.pop())


def test_ingest_async_sends_the_async_alias_and_reads_the_202(
    client: MemoryClient, server: FakeServer
) -> None:
    server.json(202, {"ingest_id": str(INGEST_ID), "job_id": 42, "status": "queued"})
    accepted = client.ingest_async(
        CUBE_ID, [{"role": "user", "content": "hi"}], idempotency_key="conv-1"
    )
    assert (accepted.job_id, accepted.status) == (42, "queued")
    assert server.body() == {"messages": [{"role": "user", "content": "hi"}], "async": True}
    assert server.last.headers["Idempotency-Key"] == "conv-1"
    # A server that did the work at once (an older one ignoring ``async``) is no 202.
    server.json(200, ingested())
    with pytest.raises(InvalidResponse, match="expected 202"):
        client.ingest_async(CUBE_ID, [{"role": "user", "content": "hi"}])


def test_bad_messages_are_refused_before_sending(client: MemoryClient, server: FakeServer) -> None:
    with pytest.raises(ValidationError):
        client.ingest(CUBE_ID, [{"role": "user", "content": "  "}])
    with pytest.raises(ValidationError):
        client.ingest(CUBE_ID, [])
    with pytest.raises(TypeError):
        client.ingest(CUBE_ID, ["just a string"])  # type: ignore[list-item]
    assert server.requests == []


def test_core_decisions_and_their_pages(client: MemoryClient, server: FakeServer) -> None:
    server.json(200, {"items": [memory_json(layer="core", kind="profile")]})
    assert [m.layer for m in client.get_core(CUBE_ID, user_id="ann").items] == ["core"]
    assert server.last.url.params.multi_items() == [("user_id", "ann")]
    server.json(200, {"items": [decision_json(0), decision_json(1)], "next_cursor": "c2"})
    server.json(200, {"items": [decision_json(2)], "next_cursor": None})
    seen = client.iter_decisions(CUBE_ID, operation="insert", ingest_id=INGEST_ID, page_size=2)
    assert [d.message_index for d in seen] == [0, 1, 2]
    first, second = server.requests[-2:]
    assert first.url.path == f"/base/v1/cubes/{CUBE_ID}/decisions"
    assert first.url.params.multi_items() == [
        ("operation", "insert"),
        ("ingest_id", str(INGEST_ID)),
        ("limit", "2"),
    ]
    assert second.url.params["cursor"] == "c2"


def test_feedback_train_and_rollback_are_not_retried_once_sent(
    client: MemoryClient, server: FakeServer
) -> None:
    server.reply(error(503, "unavailable"))
    with pytest.raises(ServiceUnavailable):
        client.feedback([MEMORY_ID], "used")
    assert server.body() == {"memory_ids": [str(MEMORY_ID)], "signal": "used"}
    server.reply(httpx.ReadTimeout("slow"))
    with pytest.raises(TransportError):
        client.train_policy("learned", activate=True)
    assert server.body() == {"activate": True}
    server.reply(error(409, "nothing_to_roll_back"))
    with pytest.raises(Conflict):
        client.rollback_policy("learned")
    assert server.last.url.path == "/base/v1/policies/learned/rollback"
    assert len(server.requests) == 3
    # Never sent: safe to send again, whatever the call.
    server.reply(httpx.ConnectError("refused")).json(201, {"recorded": 1})
    assert client.feedback([MEMORY_ID], "wrong", trace_id=INGEST_ID).recorded == 1


def test_activate_sets_a_version_so_it_is_retried(client: MemoryClient, server: FakeServer) -> None:
    server.reply(error(503, "unavailable")).json(200, policy_version_json(3))
    assert client.activate_policy("learned", 3).version == 3
    assert len(server.requests) == 2 and server.body() == {"version": 3}


def test_async_client_mirrors_the_sync_one(server: FakeServer) -> None:
    server.json(200, ingested())
    server.json(200, {"items": [decision_json(0)], "next_cursor": None})
    server.json(200, {"items": [{"name": "store_all", "description": "d", "trainable": False,
                                 "active_version": 1, "versions": []}]})  # fmt: skip

    async def go() -> tuple[list[int], list[str]]:
        async with async_client(server) as c:
            await c.ingest(CUBE_ID, [{"role": "user", "content": "hi"}], policy="store_all")
            indexes = [d.message_index async for d in c.iter_decisions(CUBE_ID)]
            names = [p.name for p in (await c.list_policies()).items]
            return indexes, names

    assert asyncio.run(go()) == ([0], ["store_all"])
    assert "Idempotency-Key" in server.requests[0].headers
