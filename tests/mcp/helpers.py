"""MCP clients for tests and the bench: the ``mcp`` SDK's own, over stdio or HTTP."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

Transport = Literal["stdio", "http"]


@asynccontextmanager
async def mcp_client(
    transport: Transport, url: str, key: str, *, cube: str = "agent-memory"
) -> AsyncIterator[Client]:
    """A connected MCP client: ``memsvc mcp`` as a subprocess, or the service's ``/mcp``."""
    if transport == "stdio":
        env = {
            **os.environ,
            "MEMSVC_URL": url,
            "MEMSVC_API_KEY": key,
            "MEMSVC_CUBE": cube,
            "MEMSVC_USER_ID": "alice",
        }
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "memsvc.cli", "mcp"], env=env
        )
        async with Client(params) as client:
            yield client
        return
    headers = {"Authorization": f"Bearer {key}", "X-Memsvc-Cube": cube, "X-Memsvc-User-Id": "alice"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


async def call(client: Client, tool: str, **arguments: object) -> dict[str, object]:
    """Call a tool that must succeed; its JSON answer."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.is_error, text
    value: dict[str, object] = json.loads(text)
    return value


async def fail(client: Client, tool: str, **arguments: object) -> str:
    """Call a tool that must fail with a tool error; its message."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]
