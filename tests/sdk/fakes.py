"""A scripted HTTP server behind ``httpx.MockTransport`` and wire bodies: no real server needed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from memsvc.sdk import AsyncMemoryClient

CUBE_ID = uuid.UUID("00000000-0000-4000-8000-0000000000c1")
NOW = "2025-01-02T03:04:05+00:00"

Reply = httpx.Response | Exception


def memory_json(n: int = 1, **changes: Any) -> dict[str, Any]:
    """A MemoryRead as the server sends it."""
    body: dict[str, Any] = {
        "id": str(uuid.UUID(int=n)),
        "cube_id": str(CUBE_ID),
        "content": f"memory {n}",
        "kind": "fact",
        "layer": "semantic",
        "tags": [],
        "metadata": {},
        "importance": 0.5,
        "status": "active",
        "created_at": NOW,
        "updated_at": NOW,
        "version": 1,
    }
    return {**body, **changes}


def cube_json(n: int = 1, **changes: Any) -> dict[str, Any]:
    """A CubeRead as the server sends it."""
    body = {
        "id": str(uuid.UUID(int=n)),
        "name": f"cube-{n}",
        "description": "",
        "metadata": {},
        "memory_count": 0,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return {**body, **changes}


def error(status: int, code: str, message: str = "nope", detail: Any = None) -> httpx.Response:
    """An error answer in the one wire shape."""
    body = {"error": {"code": code, "message": message, "detail": detail}}
    return httpx.Response(status, json=body)


class FakeServer:
    """Answers requests from a script, in order, and records what it was sent."""

    def __init__(self) -> None:
        self.replies: list[Reply | Callable[[httpx.Request], Reply]] = []
        self.requests: list[httpx.Request] = []

    def reply(self, *replies: Reply | Callable[[httpx.Request], Reply]) -> FakeServer:
        """Queue answers (responses, exceptions to raise, or functions of the request)."""
        self.replies.extend(replies)
        return self

    def json(self, status: int, body: Any) -> FakeServer:
        """Queue one JSON answer."""
        return self.reply(httpx.Response(status, json=body))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.replies, f"unexpected request {request.method} {request.url}"
        reply = self.replies.pop(0)
        if callable(reply) and not isinstance(reply, httpx.Response | Exception):
            reply = reply(request)
        if isinstance(reply, Exception):
            raise reply
        return reply

    @property
    def last(self) -> httpx.Request:
        """The last request sent."""
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        """The decoded JSON body of a request."""
        return json.loads(self.requests[index].content)


def async_client(server: FakeServer, **options: Any) -> AsyncMemoryClient:
    """An async client on a fake server."""
    options.setdefault("backoff", 0)
    return AsyncMemoryClient(
        "http://memsvc.test", "sk-test", transport=httpx.MockTransport(server), **options
    )
