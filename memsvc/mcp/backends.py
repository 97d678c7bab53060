"""Where a tool call's client comes from: one configured client (stdio), or the HTTP
request's own API key calling into the service in-process (the ``/mcp`` mount)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp.server.mcpserver import Context

from memsvc.errors import Unauthorized
from memsvc.mcp.ops import Binding, CubeCache, Defaults
from memsvc.sdk import AsyncMemoryClient

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]
CUBE_HEADER = "x-memsvc-cube"
USER_HEADER = "x-memsvc-user-id"
AGENT_HEADER = "x-memsvc-agent-id"
TENANT_HEADER = "x-tenant-id"


def fingerprint(*parts: str | None) -> str:
    """A stable cache key for a caller that never keeps the secret itself."""
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()


class ClientBackend:
    """Every call through one client (``memsvc mcp`` over stdio: one user, one key)."""

    def __init__(self, client: AsyncMemoryClient, defaults: Defaults, *, api_key: str) -> None:
        self.client = client
        self.defaults = defaults
        self.key = fingerprint(api_key)
        self.cubes = CubeCache()

    @asynccontextmanager
    async def bind(self, ctx: Context) -> AsyncIterator[Binding]:
        """The one binding."""
        yield Binding(self.client, self.defaults, self.key, self.cubes)


class AppBackend:
    """Each call as its HTTP caller: the request's Bearer key (and ``X-Tenant-Id``) sent to
    the service in-process, so the API's own auth and tenant scoping apply unchanged."""

    def __init__(self, app: ASGIApp, defaults: Defaults | None = None) -> None:
        self.app = app
        self.defaults = defaults or Defaults()
        self.cubes = CubeCache()

    @asynccontextmanager
    async def bind(self, ctx: Context) -> AsyncIterator[Binding]:
        """The binding of the HTTP request behind ``ctx``."""
        request = ctx.request_context.request
        headers = getattr(request, "headers", None)
        if headers is None:
            raise Unauthorized("the /mcp endpoint needs an HTTP request with an API key")
        auth = headers.get("authorization", "")
        forward = {"Authorization": auth}
        tenant = headers.get(TENANT_HEADER)
        if tenant:
            forward["X-Tenant-Id"] = tenant
        query = getattr(request, "query_params", {})
        defaults = Defaults(
            cube=headers.get(CUBE_HEADER) or query.get("cube") or self.defaults.cube,
            user_id=headers.get(USER_HEADER) or query.get("user_id") or self.defaults.user_id,
            agent_id=headers.get(AGENT_HEADER) or query.get("agent_id") or self.defaults.agent_id,
        )
        transport = httpx.ASGITransport(app=self.app)
        async with AsyncMemoryClient(
            "http://memsvc", transport=transport, headers=forward, max_retries=0
        ) as client:
            yield Binding(client, defaults, fingerprint(auth, tenant), self.cubes)
