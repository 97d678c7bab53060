"""The ``ingest`` and ``core`` MCP tools against the real service (``store_all``: every
turn kept, so the outcome does not depend on a model)."""

from __future__ import annotations

import pytest

from memsvc.sdk import MemoryClient
from tests.conftest import LiveServer
from tests.mcp.helpers import Transport, call, fail, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
TRANSPORTS: list[Transport] = ["http", "stdio"]
TURNS = [
    {"role": "user", "name": "Alice", "content": "I moved to Lyon for a new job."},
    {"role": "assistant", "content": "Congratulations on the move!"},
]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ingest_then_core(live_server: LiveServer, transport: Transport) -> None:
    async with mcp_client(transport, live_server.url, live_server.admin_key, cube="chat") as client:
        out = await call(client, "ingest", messages=TURNS, policy="store_all")
        assert out["policy"] == "store_all@v1" and out["decisions"] == {"insert": 2}
        memories = out["memories"]
        assert [(m["content"], m["layer"]) for m in memories] == [  # type: ignore[union-attr]
            (t["content"], "episodic") for t in TURNS
        ]
        assert "core" not in out and "warnings" not in out
        # store_all writes no core block; one written by hand is what ``core`` returns.
        assert (await call(client, "core"))["core"] == []
        with MemoryClient(live_server.url, live_server.admin_key) as sdk:
            [cube] = [c for c in sdk.iter_cubes() if c.name == "chat"]
            assert {m.user_id for m in sdk.iter_memories(cube.id)} == {"alice"}
            profile = sdk.add(cube.id, "Alice lives in Lyon.", layer="core", kind="profile",
                              user_id="alice")  # fmt: skip
        [block] = (await call(client, "core"))["core"]  # type: ignore[misc]
        assert (block["id"], block["user_id"]) == (str(profile.id), "alice")
        assert (await call(client, "core", user_id="bob"))["core"] == []


async def test_bad_ingest_arguments_are_tool_errors(live_server: LiveServer) -> None:
    async with mcp_client("http", live_server.url, live_server.admin_key) as client:
        assert "messages" in await fail(client, "ingest", messages=[])
        assert "role" in await fail(
            client, "ingest", messages=[{"role": "narrator", "content": "x"}]
        )
        assert "blank" in await fail(client, "ingest", messages=[{"content": "   "}])
        assert "policy" in await fail(client, "ingest", messages=TURNS, policy="magic")
