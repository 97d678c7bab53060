"""The OpenAI Agents SDK memory tools, invoked as the Agents SDK invokes them (no model)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import FunctionTool
from agents.tool_context import ToolContext

from memsvc.adapters.openai_agents import ingest_tool, memory_tools
from memsvc.sdk import AsyncMemoryClient, MemoryClient
from tests.conftest import LiveServer


async def invoke(tool: FunctionTool, arguments: dict[str, Any] | str) -> Any:
    """What the Agents SDK does with a model's tool call: a ToolContext and the JSON text."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    ctx = ToolContext(context=None, tool_name=tool.name, tool_call_id="call-1", tool_arguments=text)
    out = await tool.on_invoke_tool(ctx, text)
    try:
        return json.loads(out)
    except (TypeError, ValueError):
        return out


def test_tools_and_their_schemas(live_server: LiveServer) -> None:
    tools = memory_tools(AsyncMemoryClient(live_server.url, live_server.admin_key))
    assert [t.name for t in tools] == ["remember", "recall", "forget"]
    schemas = {t.name: t.params_json_schema for t in tools}
    assert schemas["remember"]["required"] == ["content", "tags"]
    assert schemas["forget"]["properties"]["memory_id"]["type"] == "string"
    assert all(t.strict_json_schema and t.description for t in tools)


def test_scripted_agent_loop_through_the_tools(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    timings: dict[str, list[float]] = {}

    async def go() -> None:
        async with AsyncMemoryClient(live_server.url, live_server.admin_key) as client:
            remember, recall, forget = memory_tools(client, cube="agent-x", user_id="u-42")

            async def timed(tool: FunctionTool, args: dict[str, Any]) -> Any:
                start = time.perf_counter()
                out = await invoke(tool, args)
                timings.setdefault(tool.name, []).append((time.perf_counter() - start) * 1000)
                return out

            ids = {}
            for fact in [
                "The user prefers window seats on flights",
                "The user is allergic to peanuts",
                "The user lives in Lisbon",
            ]:
                out = await timed(remember, {"content": fact, "tags": ["profile"]})
                [made] = out["remembered"]
                ids[fact] = made["id"]
            hits = await timed(recall, {"query": "food to avoid", "top_k": 3, "tags": None})
            assert hits["results"][0]["content"] == "The user is allergic to peanuts"
            assert hits["results"][0]["why"]
            gone = await timed(forget, {"memory_id": ids["The user is allergic to peanuts"]})
            assert gone == {"forgotten": ids["The user is allergic to peanuts"]}
            hits = await timed(recall, {"query": "food to avoid", "top_k": 3, "tags": None})
            assert "The user is allergic to peanuts" not in [r["content"] for r in hits["results"]]
            assert len(hits["results"]) == 2
            # Bad arguments are answers for the model, never a crash of the run.
            assert "error" in await invoke(forget, {"memory_id": "not-an-id"})
            assert "error" in await invoke(recall, {"query": "x", "top_k": 500, "tags": None})
            assert "error" in await invoke(remember, {"content": "a\u0000b", "tags": None})
            bad_json = await invoke(remember, "{not json")
            assert isinstance(bad_json, str) and "error" in bad_json.lower()

    asyncio.run(go())
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        [cube] = [c for c in client.iter_cubes() if c.name == "agent-x"]
        kept = list(client.iter_memories(cube.id))
        assert {m.user_id for m in kept} == {"u-42"} and len(kept) == 2
    with capsys.disabled():
        print({k: f"median {sorted(v)[len(v) // 2]:.1f} ms" for k, v in timings.items()})


def test_another_tenants_memory_cannot_be_forgotten(live_server: LiveServer) -> None:
    async def go() -> Any:
        async with AsyncMemoryClient(live_server.url, live_server.admin_key) as admin:
            [remember, _, _] = memory_tools(admin, cube="a")
            made = (await invoke(remember, {"content": "secret", "tags": None}))["remembered"][0]
            tenant = await admin.create_tenant("other")
            key = (await admin.create_key(tenant_id=tenant.id)).key
            async with AsyncMemoryClient(live_server.url, key) as other:
                [_, _, forget] = memory_tools(other, cube="b")
                denied = await invoke(forget, {"memory_id": made["id"]})
            still = await admin.get_memory(made["id"])
            return denied, still.status

    denied, status = asyncio.run(go())
    assert denied["error"].startswith("not_found") and status == "active"


def test_ingest_conversation_tool(live_server: LiveServer) -> None:
    turns = [
        {"role": "user", "content": "I moved to Lyon.", "name": "Alice"},
        {"role": "assistant", "content": "Welcome to Lyon!", "name": None},
    ]

    async def go() -> tuple[Any, Any, set[str | None]]:
        async with AsyncMemoryClient(live_server.url, live_server.admin_key) as client:
            tool = ingest_tool(client, cube="chat", user_id="alice", policy="store_all")
            out = await invoke(tool, {"messages": turns})
            bad = await invoke(tool, {"messages": []})
            [cube] = [c async for c in client.iter_cubes() if c.name == "chat"]
            owners = {m.user_id async for m in client.iter_memories(cube.id)}
            return out, bad, owners

    assert ingest_tool(AsyncMemoryClient(live_server.url)).name == "ingest_conversation"
    out, bad, owners = asyncio.run(go())
    assert out["policy"] == "store_all@v1" and out["decisions"] == {"insert": 2}
    assert [m["content"] for m in out["memories"]] == [t["content"] for t in turns]
    assert owners == {"alice"}
    assert "at least one message" in bad["error"]
