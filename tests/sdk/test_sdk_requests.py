"""Request shapes and parsing of ``MemoryClient`` against a scripted server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import BaseModel

from memsvc.schemas import (
    CubeCreate,
    CubeUpdate,
    MemoryCreate,
    MemoryUpdate,
    RetrievalConfig,
    SearchFilters,
    SearchRequest,
    SourceCreate,
)
from memsvc.sdk import (
    CubeRead,
    KeyCreated,
    MemoryClient,
    MemoryRead,
    MemoryVersionRead,
    ProvenanceRead,
    SearchResponse,
    TenantRead,
)
from memsvc.sdk._types import (
    CubeFields,
    CubeUpdateFields,
    MemoryFields,
    MemoryUpdateFields,
    SearchFields,
)

from .fakes import CUBE_ID, NOW, FakeServer, cube_json, memory_json

MEMORY_ID = uuid.UUID(int=1)


def test_auth_header_user_agent_and_base_path(client: MemoryClient, server: FakeServer) -> None:
    server.json(200, {"status": "ok", "checks": {"db": "ok"}})
    health = client.health()
    assert health.status == "ok" and health.checks == {"db": "ok"}
    assert server.last.url == "http://memsvc.test/base/healthz"
    assert server.last.headers["Authorization"] == "Bearer sk-test"
    assert server.last.headers["User-Agent"].startswith("memsvc-python/")


def test_api_key_falls_back_to_environment(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMSVC_API_KEY", "sk-env")
    server.json(200, {"status": "ok"}).json(200, {"status": "ok"})
    with MemoryClient(transport=httpx.MockTransport(server)) as c:
        c.ready()
    monkeypatch.delenv("MEMSVC_API_KEY")
    with MemoryClient(transport=httpx.MockTransport(server), headers={"X-Trace": "1"}) as c:
        c.health()
    assert server.requests[0].url == "http://127.0.0.1:8080/readyz"
    assert server.requests[0].headers["Authorization"] == "Bearer sk-env"
    assert "Authorization" not in server.requests[1].headers
    assert server.requests[1].headers["X-Trace"] == "1"


def test_create_cube_from_name_model_or_keywords(client: MemoryClient, server: FakeServer) -> None:
    for _ in range(3):
        server.json(201, cube_json(name="notes", description="d"))
    cube = client.create_cube("notes", description="d")
    client.create_cube(CubeCreate(name="notes", description="d"))
    client.create_cube(name="notes", description="d")
    assert isinstance(cube, CubeRead) and cube.id == uuid.UUID(int=1)
    assert [(r.method, r.url.path) for r in server.requests] == [("POST", "/base/v1/cubes")] * 3
    assert [server.body(i) for i in range(3)] == [{"name": "notes", "description": "d"}] * 3
    assert server.last.headers["Content-Type"] == "application/json"
    assert "Idempotency-Key" not in server.last.headers


def test_cube_read_update_delete(client: MemoryClient, server: FakeServer) -> None:
    server.json(200, cube_json()).json(200, cube_json(name="renamed")).json(200, cube_json())
    server.reply(httpx.Response(204))
    client.get_cube(CUBE_ID)
    renamed = client.update_cube(str(CUBE_ID), name="renamed")
    client.update_cube(CUBE_ID, CubeUpdate(description="x"), metadata=None)
    client.delete_cube(CUBE_ID)
    path = f"/base/v1/cubes/{CUBE_ID}"
    assert [(r.method, r.url.path) for r in server.requests] == [
        ("GET", path),
        ("PATCH", path),
        ("PATCH", path),
        ("DELETE", path),
    ]
    assert renamed.name == "renamed"
    assert server.body(1) == {"name": "renamed"}
    assert server.body(2) == {"description": "x", "metadata": None}


def test_add_one_memory(client: MemoryClient, server: FakeServer) -> None:
    server.json(201, {"items": [memory_json(tags=["a", "b"])]})
    memory = client.add(CUBE_ID, content="likes tea", tags=["a", "b"], user_id="u1")
    assert isinstance(memory, MemoryRead)
    assert memory.tags == ["a", "b"] and memory.created_at == datetime.fromisoformat(NOW)
    assert (server.last.method, server.last.url.path) == (
        "POST",
        f"/base/v1/cubes/{CUBE_ID}/memories",
    )
    assert server.body() == {
        "memories": [{"content": "likes tea", "tags": ["a", "b"], "user_id": "u1"}]
    }
    uuid.UUID(server.last.headers["Idempotency-Key"])  # a fresh UUID per call


def test_add_positional_content_model_and_own_idempotency_key(
    client: MemoryClient, server: FakeServer
) -> None:
    server.json(201, {"items": [memory_json()]}).json(201, {"items": [memory_json()]})
    client.add(CUBE_ID, "likes tea", layer="core", idempotency_key="k-1")
    source = SourceCreate(text="I like tea", speaker="user")
    client.add(CUBE_ID, MemoryCreate(content="likes tea", sources=[source]), importance=0.9)
    assert server.requests[0].headers["Idempotency-Key"] == "k-1"
    assert server.body(0) == {"memories": [{"content": "likes tea", "layer": "core"}]}
    assert server.body(1) == {
        "memories": [
            {
                "content": "likes tea",
                "sources": [{"speaker": "user", "text": "I like tea"}],
                "importance": 0.9,
            }
        ]
    }
    keys = {r.headers["Idempotency-Key"] for r in server.requests}
    assert len(keys) == 2


def test_add_many_keeps_order(client: MemoryClient, server: FakeServer) -> None:
    server.json(201, {"items": [memory_json(1), memory_json(2)]})
    created = client.add_many(CUBE_ID, [MemoryCreate(content="a"), MemoryCreate(content="b")])
    assert [m.id for m in created] == [uuid.UUID(int=1), uuid.UUID(int=2)]
    assert server.body() == {"memories": [{"content": "a"}, {"content": "b"}]}
    assert "Idempotency-Key" in server.last.headers


def test_invalid_input_is_refused_before_sending(client: MemoryClient, server: FakeServer) -> None:
    with pytest.raises(ValueError):
        client.add(CUBE_ID, content="   ")
    with pytest.raises(ValueError):
        client.add(CUBE_ID, "x", colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="tags"):
        client.list_memories(CUBE_ID, tags=["a"])  # type: ignore[call-arg]
    assert server.requests == []


def test_list_memories_query(client: MemoryClient, server: FakeServer) -> None:
    server.json(200, {"items": [memory_json()], "next_cursor": "c2"})
    page = client.list_memories(
        CUBE_ID,
        cursor="c1",
        limit=50,
        status="active",
        layer="episodic",
        tag=["a", "b"],
        user_id="u1",
        created_after=datetime(2025, 1, 1, tzinfo=UTC),
        include_deleted=True,
    )
    assert page.next_cursor == "c2" and isinstance(page.items[0], MemoryRead)
    assert server.last.url.path == f"/base/v1/cubes/{CUBE_ID}/memories"
    assert server.last.url.params.multi_items() == [
        ("status", "active"),
        ("layer", "episodic"),
        ("tag", "a"),
        ("tag", "b"),
        ("user_id", "u1"),
        ("created_after", "2025-01-01T00:00:00+00:00"),
        ("include_deleted", "true"),
        ("cursor", "c1"),
        ("limit", "50"),
    ]


def test_update_sends_only_given_fields(client: MemoryClient, server: FakeServer) -> None:
    server.json(200, memory_json(version=3)).json(200, memory_json(version=4))
    updated = client.update_memory(MEMORY_ID, expected_version=2, content="new", user_id=None)
    client.update_memory(MEMORY_ID, MemoryUpdate(expected_version=3, tags=["x"]), reason="fix")
    assert updated.version == 3
    assert server.last.method == "PATCH"
    assert server.last.url.path == f"/base/v1/memories/{MEMORY_ID}"
    assert server.body(0) == {"expected_version": 2, "content": "new", "user_id": None}
    assert server.body(1) == {"expected_version": 3, "tags": ["x"], "reason": "fix"}


def test_delete_restore_versions_provenance(client: MemoryClient, server: FakeServer) -> None:
    version = {
        "memory_id": str(MEMORY_ID),
        "version": 2,
        "change_kind": "update",
        "content": "c",
        "kind": "fact",
        "layer": "semantic",
        "tags": [],
        "metadata": {},
        "importance": 0.5,
        "status": "active",
        "actor": "key:1",
        "created_at": NOW,
    }
    provenance = {
        "memory_id": str(MEMORY_ID),
        "versions": [{"version": 1, "change_kind": "create", "actor": "k", "created_at": NOW}],
    }
    server.reply(httpx.Response(204), httpx.Response(204))
    server.json(200, memory_json()).json(200, {"items": [version], "next_cursor": None})
    server.json(200, version).json(200, provenance)
    client.delete_memory(MEMORY_ID)
    client.delete_memory(MEMORY_ID, hard=True)
    restored = client.restore_memory(MEMORY_ID)
    versions = client.list_versions(MEMORY_ID, limit=10)
    one = client.get_version(MEMORY_ID, 2)
    prov = client.get_provenance(MEMORY_ID)
    base = f"/base/v1/memories/{MEMORY_ID}"
    assert [(r.method, str(r.url).removeprefix("http://memsvc.test")) for r in server.requests] == [
        ("DELETE", base),
        ("DELETE", f"{base}?hard=true"),
        ("POST", f"{base}/restore"),
        ("GET", f"{base}/versions?limit=10"),
        ("GET", f"{base}/versions/2"),
        ("GET", f"{base}/provenance"),
    ]
    assert restored.status == "active"
    assert isinstance(versions.items[0], MemoryVersionRead) and one.version == 2
    assert isinstance(prov, ProvenanceRead) and prov.versions[0].change_kind == "create"


def test_ids_are_escaped_in_paths(client: MemoryClient, server: FakeServer) -> None:
    server.json(200, memory_json())
    client.get_memory("../keys")
    assert server.last.url.raw_path == b"/base/v1/memories/..%2Fkeys"


def test_search(client: MemoryClient, server: FakeServer) -> None:
    hit = {
        "memory": memory_json(),
        "score": 0.8,
        "explain": {"vector": {"rank": 1, "score": 0.9}},
    }
    server.json(200, {"results": [hit], "preset": "hybrid", "took_ms": 3.5}).json(
        200, {"results": []}
    )
    answer = client.search(
        CUBE_ID, "tea?", top_k=3, filters=SearchFilters(tags=["a"]), preset="hybrid"
    )
    request = SearchRequest(query="tea?", config=RetrievalConfig(rerank=True), explain=True)
    client.search(CUBE_ID, request)
    assert isinstance(answer, SearchResponse)
    assert answer.results[0].memory.id == MEMORY_ID
    assert answer.results[0].explain is not None and answer.results[0].explain["vector"].rank == 1
    assert server.requests[0].url.path == f"/base/v1/cubes/{CUBE_ID}/search"
    assert server.body(0) == {
        "query": "tea?",
        "top_k": 3,
        "filters": {"tags": ["a"]},
        "preset": "hybrid",
    }
    assert server.body(1) == {"query": "tea?", "config": {"rerank": True}, "explain": True}


def test_tenants_and_keys(client: MemoryClient, server: FakeServer) -> None:
    tenant_id = uuid.UUID(int=7)
    key = {"id": str(uuid.UUID(int=8)), "key": "sk-new", "tenant_id": str(tenant_id)}
    server.json(201, {"id": str(tenant_id), "name": "acme"})
    server.json(201, {**key, "name": "ops", "admin": True})
    server.json(200, {"items": [], "next_cursor": None}).reply(httpx.Response(204))
    tenant = client.create_tenant("acme")
    created = client.create_key(name="ops", admin=True, tenant_id=tenant_id)
    client.list_keys(cursor="c", limit=5)
    client.delete_key(created.id)
    assert isinstance(tenant, TenantRead) and isinstance(created, KeyCreated)
    assert created.key == "sk-new"
    assert [(r.method, r.url.path) for r in server.requests] == [
        ("POST", "/base/v1/tenants"),
        ("POST", "/base/v1/keys"),
        ("GET", "/base/v1/keys"),
        ("DELETE", f"/base/v1/keys/{uuid.UUID(int=8)}"),
    ]
    assert server.body(0) == {"name": "acme"}
    assert server.body(1) == {"tenant_id": str(tenant_id), "name": "ops", "admin": True}
    assert server.requests[2].url.query == b"cursor=c&limit=5"


@pytest.mark.parametrize(
    ("fields", "model"),
    [
        (CubeFields, CubeCreate),
        (CubeUpdateFields, CubeUpdate),
        (MemoryFields, MemoryCreate),
        (MemoryUpdateFields, MemoryUpdate),
        (SearchFields, SearchRequest),
    ],
)
def test_keyword_shapes_mirror_the_schemas(fields: type, model: type[BaseModel]) -> None:
    assert list(fields.__annotations__) == list(model.model_fields)
