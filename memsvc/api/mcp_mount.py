"""``/mcp``: the MCP server over streamable HTTP, when the ``mcp`` package is installed.

The endpoint turns away a request without a valid Bearer key (401, the API's error shape)
before MCP sees it; each tool call then runs as that key through the REST API in-process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.routing import Route

from memsvc.errors import Unauthorized

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
PATH = "/mcp"


def mount_mcp(app: FastAPI) -> Callable[[], AbstractAsyncContextManager[None]] | None:
    """Add ``/mcp`` to ``app``; the context to run it in, or ``None`` without ``mcp``."""
    try:
        from memsvc.mcp.http import http_mount
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "mcp":
            raise
        return None
    mount = http_mount(app)

    endpoint = _Guarded(app, mount.endpoint)
    app.router.routes.append(
        Route(PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    )

    @asynccontextmanager
    async def running() -> AsyncIterator[None]:
        async with mount.running():
            yield

    return running


class _Guarded:
    """The MCP endpoint behind the API-key check (an ASGI app, so Starlette passes it the
    raw scope: a plain function would be called as a request handler)."""

    def __init__(self, app: FastAPI, inner: Callable[[Scope, Receive, Send], Awaitable[None]]):
        self.app = app
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            failure = await _check_key(self.app, scope)
            if failure is not None:
                response = JSONResponse(failure.to_wire(), status_code=401)
                await response(scope, receive, send)
                return
        await self.inner(scope, receive, send)


async def _check_key(app: FastAPI, scope: Scope) -> Unauthorized | None:
    """Why the request may not use ``/mcp``, or ``None`` when its key is valid."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    scheme, _, raw = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if await app.state.memsvc.keys.lookup(raw.strip()) is None:
        return Unauthorized("invalid or revoked API key")
    return None
