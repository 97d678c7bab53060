"""The MCP server through the ``mcp`` SDK's own client, over stdio and streamable HTTP,
against the real service on a loopback port."""

from __future__ import annotations

import json
import uuid
from typing import cast

import anyio
import httpx
import pytest

from memsvc.mcp import ops
from memsvc.mcp.ops import Binding, Budget, ToolFailure
from memsvc.sdk import AsyncMemoryClient
from tests.conftest import LiveServer
from tests.mcp.helpers import Transport, call, fail, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
TRANSPORTS: list[Transport] = ["http", "stdio"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_agent_loop_remember_recall_forget(
    live_server: LiveServer, transport: Transport
) -> None:
    """Remember three things, recall one, forget it, recall again."""
    async with mcp_client(transport, live_server.url, live_server.admin_key) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {
            "remember", "recall", "ask", "ingest", "core", "forget", "history", "link", "neighbours"
        }  # fmt: skip
        facts = [
            "Alice is vegetarian and avoids mushrooms",
            "Alice's daughter plays the cello on Tuesdays",
            "Alice works as a structural engineer in Lyon",
        ]
        ids = []
        for fact in facts:
            made = await call(client, "remember", content=fact, tags=["alice"])
            (memory,) = made["remembered"]  # type: ignore[misc]
            assert memory["content"] == fact and memory["tags"] == ["alice"]
            ids.append(memory["id"])
        found = await call(
            client, "recall", query="what instrument does the daughter play?", top_k=3
        )
        results = found["results"]
        assert results[0]["id"] == ids[1]  # type: ignore[index]
        assert results[0]["why"] and results[0]["when"]  # type: ignore[index]
        assert await call(client, "forget", memory_id=ids[1]) == {"forgotten": ids[1]}
        again = await call(
            client, "recall", query="what instrument does the daughter play?", top_k=3
        )
        assert ids[1] not in [r["id"] for r in again["results"]]  # type: ignore[union-attr]
        assert {r["id"] for r in again["results"]} == {ids[0], ids[2]}  # type: ignore[union-attr]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_messages_history_link_neighbours_resources(
    live_server: LiveServer, transport: Transport
) -> None:
    async with mcp_client(transport, live_server.url, live_server.admin_key, cube="work") as client:
        made = await call(
            client,
            "remember",
            messages=[
                {"role": "user", "content": "I moved to Berlin in March"},
                {"role": "assistant", "content": "Noted: you live in Berlin now"},
            ],
        )
        first, second = made["remembered"]  # type: ignore[misc]
        assert first["content"] == "user: I moved to Berlin in March"
        linked = await call(
            client,
            "link",
            source_id=second["id"],
            target_id=first["id"],
            relation="supports",
            reason="the assistant confirmed it",
        )
        assert linked["relation"] == "supports"
        near = await call(client, "neighbours", memory_id=first["id"])
        (neighbour,) = near["neighbours"]  # type: ignore[misc]
        assert neighbour["id"] == second["id"]
        assert (neighbour["relation"], neighbour["direction"]) == ("supports", "in")
        assert neighbour["why"] == "the assistant confirmed it"
        past = await call(client, "history", memory_id=first["id"])
        assert past["versions"][0]["version"] == 1  # type: ignore[index]
        assert past["versions"][0]["content"] == first["content"]  # type: ignore[index]
        recent = await client.read_resource("memsvc://cubes/work/recent")
        listed = json.loads(recent.contents[0].text)  # type: ignore[union-attr]
        assert [m["id"] for m in listed["memories"]] == [second["id"], first["id"]] or {
            m["id"] for m in listed["memories"]
        } == {first["id"], second["id"]}
        core = await client.read_resource("memsvc://cubes/work/core")
        assert json.loads(core.contents[0].text)["memories"] == []  # type: ignore[union-attr]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bad_arguments_are_tool_errors(live_server: LiveServer, transport: Transport) -> None:
    async with mcp_client(transport, live_server.url, live_server.admin_key) as client:
        assert "query" in await fail(client, "recall")
        assert "top_k" in await fail(client, "recall", query="x", top_k=0)
        assert "not a memory id" in await fail(client, "forget", memory_id="nope")
        assert "not_found" in await fail(
            client, "forget", memory_id="00000000-0000-0000-0000-000000000000"
        )
        assert "either content or" in await fail(client, "remember")
        assert "either content or" in await fail(
            client, "remember", content="a", messages=[{"role": "user", "content": "b"}]
        )
        assert "NUL" in await fail(client, "remember", content="bad\x00byte")
        assert "NUL" in await fail(client, "recall", query="q\x00")
        assert "now" in await fail(client, "recall", query="x", now="yesterday")
        assert "now" in await fail(client, "recall", query="x", now="0001-01-01T00:00:00+14:00")
        asked = await call(client, "recall", query="last Saturday", now="2024-05-30T18:00:00Z")
        assert asked["results"] == []
        assert "content" in await fail(client, "remember", content="x" * 1_000_000)
        assert "relation" in await fail(
            client, "link", source_id="a", target_id="b", relation="loves"
        )
        assert await fail(client, "history", memory_id="\x00" * 10)
        # Still serving after all that.
        assert (await call(client, "recall", query="anything"))["results"] == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ask_returns_the_evidence_and_refuses_bad_arguments(
    live_server: LiveServer, transport: Transport
) -> None:
    async with mcp_client(transport, live_server.url, live_server.admin_key, cube="ask") as client:
        made = await call(
            client,
            "remember",
            messages=[
                {"role": "Caroline", "content": "I have been researching adoption agencies."},
                {"role": "Melanie", "content": "I painted a sunrise over the lake last weekend."},
                {"role": "Caroline", "content": "Hope House. They support LGBTQ parents."},
            ],
            tags=["chat"],
        )
        ids = [m["id"] for m in made["remembered"]]  # type: ignore[union-attr]
        got = await call(
            client,
            "ask",
            question="Is Caroline researching adoption agencies?",
            top_k=2,
            mode="heuristic",
            tags=["chat"],
            max_cycles=1,
            deadline_ms=20_000,
        )
        assert got["answer"] is None and got["llm_calls"] == 0
        assert set(got) <= {
            "answer",
            "evidence",
            "cues",
            "cycles",
            "llm_calls",
            "stopped",
            "trace_id",
        }
        evidence = got["evidence"]
        assert isinstance(evidence, list) and len(evidence) == 2
        assert evidence[0]["id"] == ids[0] and "adoption" in evidence[0]["content"]
        assert evidence[0]["why"] and evidence[0]["when"] and evidence[0]["tags"] == ["chat"]
        async with AsyncMemoryClient(live_server.url, live_server.admin_key) as sdk:
            trace = await sdk.get_trace(str(got["trace_id"]))
        assert trace.evidence_ids == [uuid.UUID(e["id"]) for e in evidence]
        none = await call(client, "ask", question="adoption", tags=["no-such-tag"])
        assert none["evidence"] == []

        assert "question" in await fail(client, "ask")
        assert "question" in await fail(client, "ask", question="")
        assert "top_k" in await fail(client, "ask", question="x", top_k=0)
        assert "top_k" in await fail(client, "ask", question="x", top_k=10**30)
        assert "mode" in await fail(client, "ask", question="x", mode="magic")
        assert "max_cycles" in await fail(client, "ask", question="x", max_cycles=-1)
        assert "max_tokens" in await fail(client, "ask", question="x", max_tokens=10**19)
        assert "deadline_ms" in await fail(client, "ask", question="x", deadline_ms=10**9)
        assert "deadline_ms" in await fail(client, "ask", question="x", deadline_ms="soon")
        assert "now" in await fail(client, "ask", question="x", now="yesterday")
        assert "now" in await fail(client, "ask", question="x", now="9999-12-31T23:59:59-14:00")
        assert "NUL" in await fail(client, "ask", question="q\x00")
        assert "question" in await fail(client, "ask", question="x" * 9000)
        assert "tags" in await fail(client, "ask", question="x", tags="chat")
        assert "not_found" in await fail(
            client, "ask", question="x", cube="00000000-0000-4000-8000-000000000000"
        )
        assert (await call(client, "ask", question="anything", mode="heuristic"))["evidence"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_key_of_another_tenant_sees_nothing(
    live_server: LiveServer, transport: Transport
) -> None:
    async with AsyncMemoryClient(live_server.url, live_server.admin_key) as admin:
        tenant = await admin.create_tenant("other")
        other_key = (await admin.create_key(tenant_id=tenant.id, name="other")).key
    async with mcp_client(transport, live_server.url, live_server.admin_key) as mine:
        made = await call(mine, "remember", content="the vault code is 4512")
        secret = made["remembered"][0]["id"]  # type: ignore[index]
    async with mcp_client(transport, live_server.url, other_key) as theirs:
        assert (await call(theirs, "recall", query="vault code"))["results"] == []
        assert (await call(theirs, "ask", question="what is the vault code?"))["evidence"] == []
        for tool in ("forget", "history", "neighbours"):
            assert "not_found" in await fail(theirs, tool, memory_id=secret)
        own = (await call(theirs, "remember", content="mine"))["remembered"][0]["id"]  # type: ignore[index]
        assert "not_found" in await fail(
            theirs, "link", source_id=own, target_id=secret, relation="related"
        )
    async with AsyncMemoryClient(live_server.url, live_server.admin_key) as admin:
        assert (await admin.get_memory(secret)).status == "active"


async def test_http_endpoint_needs_a_valid_key(live_server: LiveServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
            answer = await http.post("/mcp", json=body, headers=headers)
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] == "unauthorized"


async def test_a_lone_surrogate_in_a_question_is_refused(live_server: LiveServer) -> None:
    # The mcp client cannot encode one; escaped JSON can carry it, as any other client may.
    # The protocol layer refuses it as a parse error; ``ops.ask`` refuses it as well.
    call_ = {"name": "ask", "arguments": {"question": "q\ud800"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call_}
    headers = {
        "Authorization": f"Bearer {live_server.admin_key}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        answer = await http.post("/mcp", content=json.dumps(body), headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == -32700
    with pytest.raises(ToolFailure, match="lone surrogate"):
        await ops.ask(
            cast(Binding, None),
            question="q\ud800",
            top_k=1,
            tags=None,
            user_id=None,
            cube=None,
            now=None,
            mode="auto",
            budget=Budget(),
        )


async def test_concurrent_http_callers(live_server: LiveServer) -> None:
    async with mcp_client("http", live_server.url, live_server.admin_key) as client:

        async def one(i: int) -> None:
            await call(client, "remember", content=f"parallel fact number {i}")

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
        found = await call(client, "recall", query="parallel fact", top_k=20)
        assert len(found["results"]) == 8  # type: ignore[arg-type]


async def test_a_deleted_default_cube_is_made_again(live_server: LiveServer) -> None:
    async with mcp_client("http", live_server.url, live_server.admin_key, cube="brief") as client:
        first = await call(client, "remember", content="before the cube was deleted")
        async with AsyncMemoryClient(live_server.url, live_server.admin_key) as admin:
            (cube,) = [c async for c in admin.iter_cubes() if c.name == "brief"]
            await admin.delete_cube(cube.id)
        again = await call(client, "remember", content="after the cube was deleted")
        assert again["remembered"][0]["id"] != first["remembered"][0]["id"]  # type: ignore[index]
        found = await call(client, "recall", query="cube deleted")
        assert [r["content"] for r in found["results"]] == ["after the cube was deleted"]  # type: ignore[union-attr]
