"""SDK polish: sync/async parity, per-call timeouts, version iterators, typed filters, retries."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from typing import Any

import httpx
import pytest

from memsvc.api.app import create_app
from memsvc.config import Settings
from memsvc.sdk import AsyncMemoryClient, MemoryClient, MemoryFilters, RateLimited, TransportError

from .fakes import CUBE_ID, NOW, FakeServer, async_client, memory_json

MEMORY_ID = uuid.UUID(int=1)
# What differs by nature: closing, and the context-manager protocol.
OWN = {MemoryClient: {"close"}, AsyncMemoryClient: {"aclose"}}


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_") and name not in OWN[cls]
    }


def _sync_spelling(annotation: object) -> str:
    return str(annotation).replace("AsyncIterator", "Iterator").replace("AsyncBase", "Base")


def version_json(n: int) -> dict[str, Any]:
    """A MemoryVersionRead as the server sends it."""
    return {
        "memory_id": str(MEMORY_ID),
        "version": n,
        "change_kind": "create" if n == 1 else "update",
        "content": f"v{n}",
        "kind": "fact",
        "layer": "semantic",
        "tags": [],
        "metadata": {},
        "importance": 0.5,
        "status": "active",
        "actor": "key:test",
        "created_at": NOW,
    }


def test_sync_and_async_clients_expose_the_same_methods_and_signatures() -> None:
    sync, asyn = _public(MemoryClient), _public(AsyncMemoryClient)
    assert sorted(sync) == sorted(asyn)
    assert len(sync) > 25
    for name, signature in sync.items():
        other = asyn[name]
        assert list(signature.parameters) == list(other.parameters), name
        for param, twin in zip(
            signature.parameters.values(), other.parameters.values(), strict=True
        ):
            assert (param.kind, param.default) == (twin.kind, twin.default), (name, param)
            assert _sync_spelling(param.annotation) == _sync_spelling(twin.annotation), name
        assert _sync_spelling(signature.return_annotation) == _sync_spelling(
            other.return_annotation
        ), name
        is_iter = name.startswith("iter_") or name.endswith("_stream")
        assert inspect.iscoroutinefunction(getattr(AsyncMemoryClient, name)) is not is_iter, name
    assert inspect.signature(MemoryClient.__init__) is not None


@pytest.mark.parametrize("cls", [MemoryClient, AsyncMemoryClient])
def test_every_method_takes_a_keyword_only_timeout(cls: type) -> None:
    for name, signature in _public(cls).items():
        param = signature.parameters.get("timeout")
        assert param is not None, name
        assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is None, name


def _timeouts(server: FakeServer) -> list[float | None]:
    return [r.extensions["timeout"]["read"] for r in server.requests]


def test_per_call_timeout_overrides_the_client_default(server: FakeServer) -> None:
    server.json(200, memory_json()).json(200, memory_json())
    server.json(200, {"items": [memory_json()], "next_cursor": "c2"})
    server.json(200, {"items": [memory_json(2)], "next_cursor": None})
    transport = httpx.MockTransport(server)
    with MemoryClient("http://memsvc.test", "sk", transport=transport, timeout=30) as c:
        c.get_memory(MEMORY_ID)
        c.get_memory(MEMORY_ID, timeout=1.5)
        assert len(list(c.iter_memories(CUBE_ID, timeout=2))) == 2
    assert _timeouts(server) == [30, 1.5, 2, 2]


def test_async_per_call_timeout(server: FakeServer) -> None:
    server.json(200, {"results": []}).json(200, {"results": []})

    async def go() -> None:
        async with async_client(server, timeout=30) as c:
            await c.search(CUBE_ID, "tea", timeout=0.25, top_k=3)
            await c.search(CUBE_ID, "tea")

    asyncio.run(go())
    assert _timeouts(server) == [0.25, 30]
    assert server.body(0) == {"query": "tea", "top_k": 3}


def test_a_slow_answer_past_the_call_timeout_is_a_transport_error(server: FakeServer) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        assert request.extensions["timeout"]["read"] == 0.01
        raise httpx.ReadTimeout("slow", request=request)

    server.reply(slow, slow)
    transport = httpx.MockTransport(server)
    c = MemoryClient("http://memsvc.test", "sk", transport=transport, max_retries=1, backoff=0)
    with c, pytest.raises(TransportError, match="2 attempt"):
        c.get_memory(MEMORY_ID, timeout=0.01)


def test_iter_versions_follows_cursors_sync(client: MemoryClient, server: FakeServer) -> None:
    server.json(200, {"items": [version_json(1), version_json(2)], "next_cursor": "2"})
    server.json(200, {"items": [version_json(3)], "next_cursor": None})
    assert [v.version for v in client.iter_versions(MEMORY_ID, page_size=2)] == [1, 2, 3]
    assert [r.url.params.multi_items() for r in server.requests] == [
        [("limit", "2")],
        [("cursor", "2"), ("limit", "2")],
    ]
    assert server.requests[0].url.path.endswith(f"/v1/memories/{MEMORY_ID}/versions")


def test_iter_versions_follows_cursors_async(server: FakeServer) -> None:
    server.json(200, {"items": [version_json(1)], "next_cursor": "1"})
    server.json(200, {"items": [version_json(2)], "next_cursor": None})

    async def go() -> list[int]:
        async with async_client(server) as c:
            return [v.version async for v in c.iter_versions(MEMORY_ID)]

    assert asyncio.run(go()) == [1, 2]


def test_async_retry_honours_retry_after(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("memsvc.sdk._async_client.anyio.sleep", sleep)
    server.reply(httpx.Response(429, headers={"Retry-After": "2"}, json={}))
    server.reply(httpx.Response(503, headers={"Retry-After": "0.5"}))
    server.json(200, memory_json())
    too_long = {"error": {"code": "rate_limited", "message": "later", "detail": None}}
    server.reply(httpx.Response(429, headers={"Retry-After": "600"}, json=too_long))

    async def go() -> None:
        async with async_client(server) as c:
            await c.get_memory(MEMORY_ID)
            with pytest.raises(RateLimited):
                await c.get_memory(MEMORY_ID)

    asyncio.run(go())
    assert slept == [2.0, 0.5]


def test_memory_filters_name_the_servers_list_query_parameters() -> None:
    doc = create_app(Settings()).openapi()
    op = doc["paths"]["/v1/cubes/{cube_id}/memories"]["get"]
    params = {p["name"] for p in op["parameters"] if p["in"] == "query"}
    keys = MemoryFilters.__required_keys__ | MemoryFilters.__optional_keys__
    assert set(keys) == params - {"cursor", "limit"}


def test_typed_filters_pass_through_as_a_dict(client: MemoryClient, server: FakeServer) -> None:
    filters: MemoryFilters = {"layer": "core", "tag": ["a", "b"], "include_deleted": True}
    server.json(200, {"items": [], "next_cursor": None})
    assert list(client.iter_memories(CUBE_ID, **filters)) == []
    assert server.last.url.params.multi_items() == [
        ("layer", "core"),
        ("tag", "a"),
        ("tag", "b"),
        ("include_deleted", "true"),
    ]
