"""ask in the SDK on a scripted server: the request, the widened read timeout, the event
stream parser (fields, multi-line data, comments, CRLF), errors in and before a stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from memsvc.errors import (
    MemsvcError,
    NotFound,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    ValidationFailed,
)
from memsvc.schemas import AskBudget, AskResponse, SearchFilters, TraceRead, TraceStep
from memsvc.sdk import AskItem, InvalidResponse, MemoryClient
from memsvc.sdk._core import EventDecoder, ServerEvent

from .fakes import CUBE_ID, NOW, FakeServer, async_client, error, memory_json

TRACE_ID = uuid.UUID(int=77)
SSE = {"content-type": "text/event-stream"}


def answer_json(**changes: Any) -> dict[str, Any]:
    """An AskResponse as the server sends it."""
    body = {
        "answer": None,
        "evidence": [
            {"memory": memory_json(1), "score": 0.9, "found_by": "q", "cycle": 0, "why": ["x"]}
        ],
        "cues": [],
        "mode": "heuristic",
        "cycles": 0,
        "llm_calls": 0,
        "tokens": 0,
        "stopped": None,
        "took_ms": 3.5,
        "trace_id": str(TRACE_ID),
    }
    return {**body, **changes}


def step_json(kind: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "cycle": 0, "at_ms": 1.0, **fields}


def sse(*events: tuple[str, Any], sep: str = "\n") -> httpx.Response:
    text = "".join(f"event: {e}{sep}data: {json.dumps(d)}{sep}{sep}" for e, d in events)
    return httpx.Response(200, headers=SSE, content=text.encode())


def _read(request: httpx.Request) -> float | None:
    return request.extensions["timeout"]["read"]  # type: ignore[no-any-return]


def test_ask_sends_the_request_and_parses_the_answer(
    client: MemoryClient, server: FakeServer
) -> None:
    server.json(200, answer_json()).json(200, answer_json())
    now = datetime(2024, 5, 1, tzinfo=UTC)
    resp = client.ask(
        CUBE_ID,
        "who went camping?",
        now=now,
        top_k=3,
        filters=SearchFilters(session_id="s1"),
        mode="heuristic",
        budget=AskBudget(max_cycles=2, deadline_ms=5000),
    )
    assert isinstance(resp, AskResponse) and resp.trace_id == TRACE_ID
    assert server.last.url.path == f"/base/v1/cubes/{CUBE_ID}/ask"
    assert server.body() == {
        "question": "who went camping?",
        "top_k": 3,
        "mode": "heuristic",
        "now": "2024-05-01T00:00:00Z",
        "filters": {"session_id": "s1"},
        "budget": {"max_cycles": 2, "deadline_ms": 5000},
    }
    assert server.last.headers["accept"] == "application/json"
    client.ask(CUBE_ID, "q")
    assert server.body() == {"question": "q", "top_k": 10, "mode": "auto"}


def test_the_read_timeout_covers_the_deadline_unless_the_call_sets_one(server: FakeServer) -> None:
    for _ in range(4):
        server.json(200, answer_json())
    transport = httpx.MockTransport(server)
    with MemoryClient("http://memsvc.test", "sk", transport=transport, timeout=30) as c:
        c.ask(CUBE_ID, "q")  # no deadline given: the server's cap (120 s) plus slack
        c.ask(CUBE_ID, "q", budget=AskBudget(deadline_ms=60_000))
        c.ask(CUBE_ID, "q", budget=AskBudget(deadline_ms=100))  # the client's 30 s is longer
        c.ask(CUBE_ID, "q", timeout=2)
    assert [_read(r) for r in server.requests] == [130, 70, 30, 2]
    assert server.requests[0].extensions["timeout"]["connect"] == 30


def test_a_heuristic_ask_is_retried_one_that_may_call_the_llm_is_not(
    client: MemoryClient, server: FakeServer
) -> None:
    server.reply(error(503, "unavailable")).json(200, answer_json())
    assert client.ask(CUBE_ID, "q", mode="heuristic").cycles == 0
    assert len(server.requests) == 2
    for mode in ("auto", "llm"):
        server.reply(error(503, "unavailable"))
        with pytest.raises(ServiceUnavailable):
            client.ask(CUBE_ID, "q", mode=mode)  # type: ignore[arg-type]
    assert len(server.requests) == 4  # one each: not sent again


def test_bad_arguments_are_refused_before_sending(client: MemoryClient, server: FakeServer) -> None:
    for bad in ({"top_k": 0}, {"top_k": 10**30}, {"mode": "magic"}):
        with pytest.raises(ValueError):
            client.ask(CUBE_ID, "q", **bad)
    with pytest.raises(ValueError):
        client.ask(CUBE_ID, "")
    with pytest.raises(ValueError):
        AskBudget(deadline_ms=10**9)
    assert server.requests == []


def test_get_trace(client: MemoryClient, server: FakeServer) -> None:
    body = {
        "id": str(TRACE_ID),
        "cube_id": str(CUBE_ID),
        "question": "q",
        "mode": "heuristic",
        "steps": [step_json("retrieve", queries=["q"], found=[str(uuid.UUID(int=1))])],
        "evidence_ids": [str(uuid.UUID(int=1))],
        "llm_calls": 0,
        "tokens": 0,
        "took_ms": 2.0,
        "created_at": NOW,
        "expires_at": NOW,
    }
    server.json(200, body).reply(error(404, "not_found", "trace not found"))
    got = client.get_trace(TRACE_ID)
    assert isinstance(got, TraceRead) and got.steps[0].queries == ["q"]
    assert server.last.url.path == f"/base/v1/traces/{TRACE_ID}"
    with pytest.raises(NotFound, match="trace not found"):
        client.get_trace("../../v1/cubes")
    assert server.last.url.raw_path.endswith(b"/v1/traces/..%2F..%2Fv1%2Fcubes")


def test_ask_stream_yields_steps_then_the_answer(client: MemoryClient, server: FakeServer) -> None:
    server.reply(
        sse(
            ("step", step_json("retrieve", queries=["q"])),
            ("step", step_json("gate", decision="sufficient", covered=["a"], missing=[])),
            ("result", answer_json()),
            sep="\r\n",
        )
    )
    items: list[AskItem] = list(client.ask_stream(CUBE_ID, "q", top_k=2))
    assert [type(i) for i in items] == [TraceStep, TraceStep, AskResponse]
    assert [i.kind for i in items if isinstance(i, TraceStep)] == ["retrieve", "gate"]
    assert server.last.headers["accept"] == "text/event-stream"
    assert server.body() == {"question": "q", "top_k": 2, "mode": "auto"}
    assert _read(server.last) == 130


def test_event_decoder_follows_the_event_stream_rules() -> None:
    lines = [
        ": keep-alive",
        "event: step",
        "data: {",
        'data:  "a": 1}',
        "id: 7",
        "",
        "",  # a second blank line dispatches nothing
        "data:no-space",
        "",
        "event: lonely",  # an event without data is dropped
        "",
    ]
    decoder = EventDecoder()
    events = [e for e in map(decoder.feed, lines) if e is not None]
    assert events == [
        ServerEvent("step", '{\n "a": 1}'),
        ServerEvent("message", "no-space"),
    ]


def test_multi_line_data_and_unknown_events(client: MemoryClient, server: FakeServer) -> None:
    result = json.dumps(answer_json(), indent=1).splitlines()
    text = (
        ": ping\n\nevent: progress\ndata: {}\n\n"
        + "event: result\n"
        + "".join(f"data: {line}\n" for line in result)
        + "\n"
    )
    server.reply(httpx.Response(200, headers=SSE, content=text.encode()))
    [only] = list(client.ask_stream(CUBE_ID, "q"))
    assert isinstance(only, AskResponse) and only.took_ms == 3.5


@pytest.mark.parametrize(
    ("code", "cls"),
    [("internal_error", ServerError), ("validation_error", ValidationFailed), ("x", ServerError)],
)
def test_an_error_event_raises_its_typed_error_after_the_steps(
    client: MemoryClient, server: FakeServer, code: str, cls: type[MemsvcError]
) -> None:
    body = {"error": {"code": code, "message": "it broke", "detail": None}}
    server.reply(sse(("step", step_json("retrieve")), ("error", body)))
    got: list[AskItem] = []
    with pytest.raises(cls, match="it broke") as info:
        got.extend(client.ask_stream(CUBE_ID, "q"))
    assert [type(i) for i in got] == [TraceStep]
    assert info.value.code == code


def test_refused_before_the_stream_is_a_plain_error(
    client: MemoryClient, server: FakeServer
) -> None:
    server.reply(error(422, "validation_error", "top_k may be at most 5"))
    with pytest.raises(ValidationFailed, match="at most 5"):
        list(client.ask_stream(CUBE_ID, "q"))
    server.reply(error(429, "rate_limited"))
    with pytest.raises(RateLimited):
        list(client.ask_stream(CUBE_ID, "q"))
    assert len(server.requests) == 2  # a stream is not retried


@pytest.mark.parametrize(
    "content",
    [
        b"event: step\ndata: " + json.dumps(step_json("retrieve")).encode() + b"\n\n",
        b"event: step\ndata: {not json\n\n",
        b"event: result\ndata: {}\n\n",
        b"event: error\ndata: [1\n\n",
    ],
)
def test_a_broken_or_cut_stream_is_an_invalid_response(
    client: MemoryClient, server: FakeServer, content: bytes
) -> None:
    server.reply(httpx.Response(200, headers=SSE, content=content))
    with pytest.raises(InvalidResponse):
        list(client.ask_stream(CUBE_ID, "q"))


def test_a_server_answering_json_to_a_stream_request(
    client: MemoryClient, server: FakeServer
) -> None:
    server.json(200, answer_json())
    assert [type(i) for i in client.ask_stream(CUBE_ID, "q")] == [AskResponse]


def test_async_ask_stream_and_trace(server: FakeServer) -> None:
    server.json(200, answer_json())
    server.reply(sse(("step", step_json("retrieve")), ("result", answer_json(cycles=1))))
    body = {"error": {"code": "internal_error", "message": "boom", "detail": None}}
    server.reply(sse(("step", step_json("retrieve")), ("error", body)))
    server.reply(error(404, "not_found", "trace not found"))

    async def go() -> list[AskItem]:
        async with async_client(server, timeout=30) as c:
            assert (await c.ask(CUBE_ID, "q")).trace_id == TRACE_ID
            items = [i async for i in c.ask_stream(CUBE_ID, "q", mode="heuristic")]
            with pytest.raises(ServerError, match="boom"):
                async for _ in c.ask_stream(CUBE_ID, "q"):
                    pass
            with pytest.raises(NotFound):
                await c.get_trace(TRACE_ID)
            return items

    items = asyncio.run(go())
    assert [type(i) for i in items] == [TraceStep, AskResponse]
    assert isinstance(items[-1], AskResponse) and items[-1].cycles == 1
    assert [_read(r) for r in server.requests] == [130, 130, 130, 30]
