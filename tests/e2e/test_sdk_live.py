"""The real SDK against the real app: sync over HTTP (uvicorn), async over ASGI."""

from __future__ import annotations

import pytest

from memsvc.errors import Conflict, NotFound, PayloadTooLarge, Unauthorized
from memsvc.schemas import MemoryCreate, SourceCreate
from memsvc.sdk import AsyncMemoryClient, MemoryClient
from tests.conftest import LiveServer, Service


def test_sync_client_over_http_covers_the_lifecycle(live_server: LiveServer) -> None:
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        assert client.health().status == "ok"
        cube = client.create_cube("assistant")
        [m1, m2] = client.add_many(
            cube.id,
            [
                MemoryCreate(
                    content="Jordan is allergic to shellfish",
                    kind="fact",
                    sources=[SourceCreate(external_id="D1:1", speaker="Jordan")],
                ),
                MemoryCreate(content="Jordan's sister lives in Denver"),
            ],
        )
        hits = client.search(cube.id, "what can't Jordan eat?", top_k=2)
        assert hits.results[0].memory.id == m1.id
        updated = client.update_memory(
            m2.id, content="Jordan's sister moved to Austin", expected_version=1
        )
        assert updated.version == 2
        assert client.get_version(m2.id, 1).content == "Jordan's sister lives in Denver"
        with pytest.raises(Conflict):
            client.update_memory(m2.id, content="stale", expected_version=1)
        prov = client.get_provenance(m1.id)
        assert [s.external_id for s in prov.versions[0].sources] == ["D1:1"]
        client.delete_memory(m1.id)
        assert [m.id for m in client.iter_memories(cube.id)] == [m2.id]
        assert client.restore_memory(m1.id).status == "active"
        client.delete_memory(m1.id, hard=True)
        with pytest.raises(NotFound):
            client.get_memory(m1.id)
        with pytest.raises(PayloadTooLarge):
            client.add(cube.id, "x" * 40_000)
    bad = MemoryClient(live_server.url, "msk_000000000000_bogus", max_retries=0)
    with bad, pytest.raises(Unauthorized):
        bad.list_cubes()


def test_sdk_create_is_idempotent_across_a_retry(live_server: LiveServer) -> None:
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = client.create_cube("idem")
        a = client.add(cube.id, "Gave the cat its medicine", idempotency_key="evt-7")
        b = client.add(cube.id, "Gave the cat its medicine", idempotency_key="evt-7")
        assert a.id == b.id
        assert len(list(client.iter_memories(cube.id))) == 1


@pytest.mark.anyio
async def test_async_client_over_asgi(service: Service) -> None:
    import httpx

    transport = httpx.ASGITransport(app=service.app)  # type: ignore[arg-type]
    async with AsyncMemoryClient("http://memsvc", service.admin_key, transport=transport) as c:
        cube = await c.create_cube("async")
        await c.add_many(cube.id, [MemoryCreate(content=f"fact number {i}") for i in range(12)])
        seen = [m.content async for m in c.iter_memories(cube.id, page_size=5)]
        assert seen == [f"fact number {i}" for i in range(12)]
        other = await c.create_tenant("acme")
        key = await c.create_key(tenant_id=other.id, name="acme-agent")
    async with AsyncMemoryClient("http://memsvc", key.key, transport=transport) as acme:
        with pytest.raises(NotFound):
            await acme.get_cube(cube.id)
        assert (await acme.list_cubes()).items == []
