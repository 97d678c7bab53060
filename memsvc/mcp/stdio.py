"""``memsvc mcp``: the server over stdio for desktop agent hosts, and its host config."""

from __future__ import annotations

import os
from dataclasses import dataclass

from memsvc.mcp.ops import DEFAULT_CUBE, Defaults

URL_ENV = "MEMSVC_URL"
KEY_ENV = "MEMSVC_API_KEY"
CUBE_ENV = "MEMSVC_CUBE"
USER_ENV = "MEMSVC_USER_ID"
AGENT_ENV = "MEMSVC_AGENT_ID"
DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class StdioConfig:
    """Where the service is, whose key to use and the defaults of every tool call."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    cube: str = DEFAULT_CUBE
    user_id: str | None = None
    agent_id: str | None = None

    @classmethod
    def from_env(
        cls,
        *,
        url: str | None = None,
        api_key: str | None = None,
        cube: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
    ) -> StdioConfig:
        """Flags first, then ``MEMSVC_*`` environment variables, then defaults."""
        env = os.environ
        return cls(
            url=url or env.get(URL_ENV) or DEFAULT_URL,
            api_key=api_key or env.get(KEY_ENV) or None,
            cube=cube or env.get(CUBE_ENV) or DEFAULT_CUBE,
            user_id=user_id or env.get(USER_ENV) or None,
            agent_id=agent_id or env.get(AGENT_ENV) or None,
        )

    @property
    def defaults(self) -> Defaults:
        """The tools' defaults."""
        return Defaults(cube=self.cube, user_id=self.user_id, agent_id=self.agent_id)


def host_config(config: StdioConfig, *, name: str = "memsvc", http: bool = False) -> object:
    """The ``mcpServers`` block an agent host (Claude Desktop, Cursor, ...) reads."""
    if http:
        headers = {"Authorization": f"Bearer {config.api_key or '<API key>'}"}
        if config.cube != DEFAULT_CUBE:
            headers["X-Memsvc-Cube"] = config.cube
        entry: dict[str, object] = {
            "type": "http",
            "url": config.url.rstrip("/") + "/mcp",
            "headers": headers,
        }
    else:
        env = {URL_ENV: config.url, KEY_ENV: config.api_key or "<API key>", CUBE_ENV: config.cube}
        if config.user_id:
            env[USER_ENV] = config.user_id
        if config.agent_id:
            env[AGENT_ENV] = config.agent_id
        entry = {"command": "memsvc", "args": ["mcp"], "env": env}
    return {"mcpServers": {name: entry}}


def run_stdio(config: StdioConfig) -> None:
    """Serve the tools on stdin/stdout until the host closes them."""
    import anyio

    from memsvc.mcp.backends import ClientBackend
    from memsvc.mcp.server import build_server
    from memsvc.sdk import AsyncMemoryClient

    async def main() -> None:
        async with AsyncMemoryClient(config.url, config.api_key) as client:
            backend = ClientBackend(client, config.defaults, api_key=config.api_key or "")
            await build_server(backend).run_stdio_async()

    anyio.run(main)


def tool_schemas() -> list[dict[str, object]]:
    """JSON schemas of remember/recall/ask/forget (name, description, parameters) for any
    framework's tool calling (OpenAI-style ``function`` objects wrap them as they are)."""
    import anyio

    from memsvc.mcp.backends import ClientBackend
    from memsvc.mcp.server import build_server
    from memsvc.sdk import AsyncMemoryClient

    async def collect() -> list[dict[str, object]]:
        async with AsyncMemoryClient(DEFAULT_URL, "unused") as client:
            server = build_server(ClientBackend(client, Defaults(), api_key=""))
            tools = await server.list_tools()
        return [
            {"name": t.name, "description": t.description or "", "parameters": t.input_schema}
            for t in tools
            if t.name in EXPORTED_TOOLS
        ]

    return anyio.run(collect)


EXPORTED_TOOLS = ("remember", "recall", "ask", "forget")
