"""Typed errors from the wire shape, retries only when safe, and cursor pagination."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from memsvc.sdk import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidResponse,
    MemoryClient,
    MemsvcError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RetryPolicy,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    ValidationFailed,
)
from memsvc.sdk._core import retry_after

from .fakes import CUBE_ID, FakeServer, cube_json, error, memory_json

MEMORY_ID = uuid.UUID(int=1)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", BadRequest),
        (401, "unauthorized", Unauthorized),
        (403, "forbidden", Forbidden),
        (404, "not_found", NotFound),
        (409, "version_conflict", Conflict),
        (413, "payload_too_large", PayloadTooLarge),
        (422, "validation_error", ValidationFailed),
        (500, "internal_error", ServerError),
    ],
)
def test_wire_errors_become_typed(
    client: MemoryClient, server: FakeServer, status: int, code: str, cls: type[MemsvcError]
) -> None:
    server.reply(error(status, code, "it failed", {"field": "x"}))
    with pytest.raises(cls) as caught:
        client.get_memory(MEMORY_ID)
    assert type(caught.value) is cls
    assert (caught.value.status, caught.value.code) == (status, code)
    assert (caught.value.message, caught.value.detail) == ("it failed", {"field": "x"})
    assert len(server.requests) == 1


def test_non_json_error_bodies_still_typed(client: MemoryClient, server: FakeServer) -> None:
    server.reply(httpx.Response(404, text="<html>no</html>"))
    with pytest.raises(NotFound) as caught:
        client.get_cube(CUBE_ID)
    assert caught.value.detail == "<html>no</html>"
    server.reply(*[httpx.Response(502, text="Bad Gateway")] * 4)
    with pytest.raises(ServerError) as gateway:
        client.get_cube(CUBE_ID)
    assert (gateway.value.status, gateway.value.message) == (502, "HTTP 502")
    assert len(server.requests) == 5  # the 502 was retried three times


def test_unexpected_success_body_is_invalid_response(
    client: MemoryClient, server: FakeServer
) -> None:
    server.json(200, {"id": "not-a-uuid"}).reply(httpx.Response(200, text="oops"))
    with pytest.raises(InvalidResponse, match="CubeRead"):
        client.get_cube(CUBE_ID)
    with pytest.raises(InvalidResponse):
        client.get_cube(CUBE_ID)


def test_get_retried_on_503_then_succeeds(client: MemoryClient, server: FakeServer) -> None:
    server.reply(error(503, "unavailable"), httpx.Response(504)).json(200, memory_json())
    assert client.get_memory(MEMORY_ID).id == MEMORY_ID
    assert len(server.requests) == 3


def test_retries_give_up_after_max_retries(client: MemoryClient, server: FakeServer) -> None:
    server.reply(*[error(503, "unavailable", "db down")] * 4)
    with pytest.raises(ServiceUnavailable, match="db down"):
        client.list_cubes()
    assert len(server.requests) == 4


def test_post_without_idempotency_key_is_not_retried(
    client: MemoryClient, server: FakeServer
) -> None:
    server.reply(error(503, "unavailable"), error(429, "rate_limited"))
    with pytest.raises(ServiceUnavailable):
        client.create_cube("notes")
    with pytest.raises(RateLimited):
        client.restore_memory(MEMORY_ID)
    with pytest.raises(ServiceUnavailable):
        server.reply(error(503, "unavailable"))
        client.update_memory(MEMORY_ID, expected_version=1, content="x")
    assert len(server.requests) == 3


def test_create_retries_reuse_the_idempotency_key(client: MemoryClient, server: FakeServer) -> None:
    server.reply(error(503, "unavailable"), httpx.Response(502), httpx.ReadTimeout("slow"))
    server.json(201, {"items": [memory_json()]})
    assert client.add(CUBE_ID, "likes tea").id == MEMORY_ID
    keys = [r.headers["Idempotency-Key"] for r in server.requests]
    assert len(keys) == 4 and len(set(keys)) == 1
    assert all(r.content == server.requests[0].content for r in server.requests)


def test_search_post_is_retried(client: MemoryClient, server: FakeServer) -> None:
    server.reply(httpx.Response(503)).json(200, {"results": []})
    assert client.search(CUBE_ID, "tea").results == []
    assert len(server.requests) == 2


def test_retry_after_is_honoured(
    client: MemoryClient, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("memsvc.sdk._client.time.sleep", slept.append)
    server.reply(httpx.Response(429, headers={"Retry-After": "7"}, json={}))
    server.reply(httpx.Response(503, headers={"Retry-After": "0"}))
    server.json(200, {"items": [], "next_cursor": None})
    client.list_cubes()
    assert slept == [7.0, 0.0]


def test_retry_after_beyond_the_cap_raises_now(
    client: MemoryClient, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("memsvc.sdk._client.time.sleep", pytest.fail)
    body = {"error": {"code": "rate_limited", "message": "slow down", "detail": None}}
    server.reply(httpx.Response(429, headers={"Retry-After": "3600"}, json=body))
    with pytest.raises(RateLimited, match="slow down"):
        client.get_cube(CUBE_ID)


def test_retry_after_parsing() -> None:
    def parse(value: str) -> float | None:
        return retry_after(httpx.Response(503, headers={"Retry-After": value}))

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert parse("2") == 2.0
    assert parse("-5") == 0.0
    assert 25 < (parse(later) or 0) <= 30
    assert parse("soon") is None
    assert parse("nan") is None
    assert retry_after(httpx.Response(503)) is None


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=3.0)
    for _ in range(50):
        assert 0.25 <= policy.delay(0) <= 0.5
        assert 1.0 <= policy.delay(2) <= 2.0
        assert 1.5 <= policy.delay(10) <= 3.0


def test_connect_errors_retried_for_any_method(client: MemoryClient, server: FakeServer) -> None:
    server.reply(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")).json(201, cube_json())
    assert client.create_cube("notes").name == "cube-1"
    assert len(server.requests) == 3


def test_read_timeout_on_unsafe_post_is_not_retried(
    client: MemoryClient, server: FakeServer
) -> None:
    server.reply(httpx.ReadTimeout("slow"))
    with pytest.raises(TransportError) as caught:
        client.create_cube("notes")
    assert isinstance(caught.value, ServiceUnavailable)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert caught.value.detail == {"attempts": 1, "error": "ReadTimeout"}
    assert len(server.requests) == 1


def test_transport_failure_after_retries(client: MemoryClient, server: FakeServer) -> None:
    server.reply(*[httpx.ConnectError("refused")] * 4)
    with pytest.raises(TransportError, match=r"GET /v1/cubes failed after 4 attempt\(s\)"):
        client.list_cubes()
    assert len(server.requests) == 4


def test_no_retries_when_disabled(server: FakeServer) -> None:
    server.reply(httpx.Response(503))
    transport = httpx.MockTransport(server)
    with MemoryClient(transport=transport, max_retries=0) as c, pytest.raises(ServiceUnavailable):
        c.health()
    assert len(server.requests) == 1


def test_iter_memories_follows_cursors(client: MemoryClient, server: FakeServer) -> None:
    server.json(200, {"items": [memory_json(1), memory_json(2)], "next_cursor": "c1"})
    server.json(200, {"items": [memory_json(3)], "next_cursor": "c2"})
    server.json(200, {"items": [], "next_cursor": None})
    memories = list(client.iter_memories(CUBE_ID, page_size=2, tag=["a", "b"], layer="core"))
    assert [m.id.int for m in memories] == [1, 2, 3]
    assert [r.url.params.multi_items() for r in server.requests] == [
        [("tag", "a"), ("tag", "b"), ("layer", "core"), ("limit", "2")],
        [("tag", "a"), ("tag", "b"), ("layer", "core"), ("cursor", "c1"), ("limit", "2")],
        [("tag", "a"), ("tag", "b"), ("layer", "core"), ("cursor", "c2"), ("limit", "2")],
    ]


def test_iter_is_lazy_and_stops_on_a_repeated_cursor(
    client: MemoryClient, server: FakeServer
) -> None:
    cubes = client.iter_cubes()
    assert server.requests == []
    server.json(200, {"items": [cube_json(1)], "next_cursor": "c1"})
    server.json(200, {"items": [cube_json(2)], "next_cursor": "c1"})
    assert next(cubes).id.int == 1
    with pytest.raises(InvalidResponse, match="same cursor"):
        list(cubes)


def test_not_ready_is_an_answer_not_an_error(client: MemoryClient, server: FakeServer) -> None:
    checks = {"database": "ok", "models": "loading"}
    server.json(503, {"status": "unavailable", "checks": checks})
    ready = client.ready()
    assert (ready.status, ready.checks) == ("unavailable", checks)
    assert len(server.requests) == 1
