"""``AsyncMemoryClient``: the same core behind async methods, over mock and ASGI transports."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

import httpx
import pytest

from memsvc.sdk import (
    AsyncMemoryClient,
    Conflict,
    MemoryCreate,
    MemoryRead,
    NotFound,
    ServiceUnavailable,
)

from .fakes import CUBE_ID, FakeServer, async_client, cube_json, error, memory_json

MEMORY_ID = uuid.UUID(int=1)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def test_requests_and_parsing(server: FakeServer) -> None:
    server.json(201, {"items": [memory_json(1), memory_json(2)]}).json(200, memory_json())

    async def go() -> tuple[list[MemoryRead], MemoryRead]:
        async with async_client(server) as c:
            created = await c.add_many(
                CUBE_ID, [MemoryCreate(content="a"), MemoryCreate(content="b")]
            )
            return created, await c.get_memory(MEMORY_ID)

    created, memory = run(go())
    assert [m.id.int for m in created] == [1, 2] and memory.id == MEMORY_ID
    first, second = server.requests
    assert (first.method, first.url.path) == ("POST", f"/v1/cubes/{CUBE_ID}/memories")
    assert json.loads(first.content) == {"memories": [{"content": "a"}, {"content": "b"}]}
    assert first.headers["Authorization"] == "Bearer sk-test"
    uuid.UUID(first.headers["Idempotency-Key"])
    assert (second.method, second.url.path) == ("GET", f"/v1/memories/{MEMORY_ID}")


def test_typed_errors(server: FakeServer) -> None:
    server.reply(error(409, "version_conflict", "stale", {"current_version": 3}))

    async def go() -> None:
        async with async_client(server) as c:
            await c.update_memory(MEMORY_ID, expected_version=1, content="x")

    with pytest.raises(Conflict) as caught:
        run(go())
    assert caught.value.detail == {"current_version": 3}


def test_retry_on_503_then_success_keeps_the_idempotency_key(server: FakeServer) -> None:
    server.reply(httpx.Response(503), httpx.ConnectError("refused"))
    server.json(201, {"items": [memory_json()]})

    async def go() -> MemoryRead:
        async with async_client(server) as c:
            return await c.add(CUBE_ID, content="likes tea", tags=["drink"])

    assert run(go()).id == MEMORY_ID
    assert len({r.headers["Idempotency-Key"] for r in server.requests}) == 1
    assert len(server.requests) == 3


def test_post_without_idempotency_key_is_not_retried(server: FakeServer) -> None:
    server.reply(httpx.Response(503))

    async def go() -> None:
        async with async_client(server) as c:
            await c.create_cube("notes")

    with pytest.raises(ServiceUnavailable):
        run(go())
    assert len(server.requests) == 1


def test_async_iterators_follow_cursors(server: FakeServer) -> None:
    server.json(200, {"items": [memory_json(1)], "next_cursor": "c1"})
    server.json(200, {"items": [memory_json(2)], "next_cursor": None})
    server.json(200, {"items": [cube_json(5)], "next_cursor": None})

    async def go() -> tuple[list[int], list[int]]:
        async with async_client(server) as c:
            memories = [m.id.int async for m in c.iter_memories(CUBE_ID, tag="a")]
            cubes = [cube.id.int async for cube in c.iter_cubes(page_size=10)]
            return memories, cubes

    assert run(go()) == ([1, 2], [5])
    assert [str(r.url.query, "ascii") for r in server.requests] == [
        "tag=a",
        "tag=a&cursor=c1",
        "limit=10",
    ]


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def echo_app(seen: list[dict[str, Any]]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A bare ASGI app: creates memories from the body it gets, 404 for anything else."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        seen.append({"method": scope["method"], "path": scope["path"], "headers": headers})
        answer: dict[str, Any]
        if scope["method"] == "POST" and scope["path"].endswith("/memories"):
            items = [
                memory_json(i + 1, content=m["content"])
                for i, m in enumerate(json.loads(body)["memories"])
            ]
            status, answer = 201, {"items": items}
        else:
            status, answer = 404, {"error": {"code": "not_found", "message": "no such memory"}}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    return app


def test_asgi_transport_in_process() -> None:
    seen: list[dict[str, Any]] = []
    transport = httpx.ASGITransport(app=echo_app(seen))

    async def go() -> MemoryRead:
        async with AsyncMemoryClient(api_key="sk-asgi", transport=transport) as c:
            memory = await c.add(CUBE_ID, "likes tea")
            with pytest.raises(NotFound, match="no such memory"):
                await c.get_memory(MEMORY_ID)
            return memory

    assert run(go()).content == "likes tea"
    assert [(s["method"], s["path"]) for s in seen] == [
        ("POST", f"/v1/cubes/{CUBE_ID}/memories"),
        ("GET", f"/v1/memories/{MEMORY_ID}"),
    ]
    assert seen[0]["headers"]["authorization"] == "Bearer sk-asgi"
    assert "idempotency-key" in seen[0]["headers"]
