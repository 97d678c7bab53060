"""ask through the real SDK and the real app: sync over HTTP (uvicorn, a real event
stream), async over ASGI; traces, errors before and in place of a stream, isolation."""

from __future__ import annotations

import httpx
import pytest

from memsvc.errors import NotFound, ValidationFailed
from memsvc.schemas import AskBudget, AskResponse, MemoryCreate, SourceCreate, TraceStep
from memsvc.sdk import AsyncMemoryClient, MemoryClient
from tests.conftest import LiveServer, Service

TURNS = [
    ("Caroline", "I have been researching adoption agencies for months now."),
    ("Melanie", "I painted a sunrise over the lake last weekend."),
    ("Caroline", "Hope House. They really support LGBTQ parents."),
    ("Melanie", "We went camping with the kids at the beach."),
]


def turns() -> list[MemoryCreate]:
    return [
        MemoryCreate(
            content=text,
            kind="message",
            session_id="s1",
            sources=[SourceCreate(kind="message", speaker=who, text=text)],
        )
        for who, text in TURNS
    ]


def test_sync_ask_stream_and_trace_over_http(live_server: LiveServer) -> None:
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = client.create_cube("ask-live")
        mems = client.add_many(cube.id, turns())
        resp = client.ask(cube.id, "Is Caroline researching adoption agencies?", top_k=2)
        assert resp.mode == "heuristic" and resp.answer is None
        assert resp.evidence[0].memory.id == mems[0].id and len(resp.evidence) == 2
        trace = client.get_trace(resp.trace_id)
        assert [s.kind for s in trace.steps] == ["retrieve", "gate", "select"]
        assert trace.evidence_ids == [e.memory.id for e in resp.evidence]

        items = list(
            client.ask_stream(
                cube.id,
                "Which adoption agency did Caroline pick in Zanzibar?",
                top_k=3,
                mode="heuristic",
                budget=AskBudget(max_cycles=1),
            )
        )
        *steps, last = items
        assert steps and all(isinstance(s, TraceStep) for s in steps)
        assert isinstance(last, AskResponse) and last.cycles <= 1
        streamed = client.get_trace(last.trace_id)
        assert [s.kind for s in streamed.steps] == [
            s.kind for s in steps if isinstance(s, TraceStep)
        ]

        # Refused before the stream starts: the plain typed error.
        with pytest.raises(ValidationFailed):
            list(client.ask_stream(cube.id, "x", mode="llm"))
        with pytest.raises(ValidationFailed):
            client.get_trace("not-a-uuid")
        with pytest.raises(NotFound):
            client.get_trace(cube.id)


@pytest.mark.anyio
async def test_async_ask_over_asgi_keeps_tenants_apart(service: Service) -> None:
    transport = httpx.ASGITransport(app=service.app)  # type: ignore[arg-type]
    async with AsyncMemoryClient("http://memsvc", service.admin_key, transport=transport) as c:
        cube = await c.create_cube("ask-async")
        await c.add_many(cube.id, turns())
        resp = await c.ask(cube.id, "Who went camping at the beach?", top_k=1)
        steps = [i async for i in c.ask_stream(cube.id, "Who went camping?", top_k=1)]
        assert isinstance(steps[-1], AskResponse)
        other = await c.create_tenant("other")
        key = await c.create_key(tenant_id=other.id, name="other-agent")
    async with AsyncMemoryClient("http://memsvc", key.key, transport=transport) as o:
        with pytest.raises(NotFound):
            await o.get_trace(resp.trace_id)
        with pytest.raises(NotFound):
            await o.ask(cube.id, "Who went camping?")
