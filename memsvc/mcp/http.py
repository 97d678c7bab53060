"""The streamable-HTTP side: an ASGI endpoint and its lifespan, for the service to mount."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings

from memsvc.mcp.backends import AppBackend, ASGIApp
from memsvc.mcp.server import build_server


@dataclass
class HttpMount:
    """What the service mounts at ``/mcp``: the endpoint and the context to run it in."""

    endpoint: StreamableHTTPASGIApp
    manager_run: object

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Keep the session manager's task group up while the service runs."""
        async with self.manager_run():  # type: ignore[operator]
            yield


def http_mount(app: ASGIApp) -> HttpMount:
    """The MCP endpoint for ``app``: stateless (any replica answers any request), JSON
    responses. Host checks are off: every request carries a Bearer key, which a page
    rebinding DNS cannot add."""
    server = build_server(AppBackend(app))
    server.streamable_http_app(
        streamable_http_path="/",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    return HttpMount(StreamableHTTPASGIApp(manager), manager.run)
