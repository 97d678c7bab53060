"""``MemsvcStore`` (LangGraph ``BaseStore``) against a served instance, checked op for op
against LangGraph's own ``InMemoryStore``, sync and async, plus a scripted agent loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langgraph.store.base")

from langgraph.store.base import BaseStore, Item
from langgraph.store.memory import InMemoryStore

from memsvc.adapters.langgraph import MemsvcStore
from memsvc.sdk import MemoryClient
from tests.conftest import LiveServer


@pytest.fixture()
def store(live_server: LiveServer) -> Iterator[MemsvcStore]:
    with MemoryClient(live_server.url, live_server.admin_key) as client:
        cube = client.create_cube("langgraph")
        yield MemsvcStore(client, cube.id)


def shape(result: Any) -> Any:
    """A result without timestamps (and scores), sorted where order is the store's choice."""
    if isinstance(result, Item):
        return (result.namespace, result.key, result.value)
    if isinstance(result, list):
        return sorted(shape(r) for r in result)
    return result


ALICE = ("users", "alice", "memories")
BOB = ("users", "bob", "memories")


def script(s: BaseStore) -> list[Any]:
    """The same calls on any store; what each answered."""
    out: list[Any] = []
    s.put(ALICE, "food", {"content": "Alice is vegetarian", "kind": "diet", "n": 1})
    s.put(ALICE, "home", {"content": "Alice lives in Lyon", "kind": "place", "n": 2})
    s.put(BOB, "food", {"content": "Bob loves steak", "kind": "diet", "n": 3})
    s.put(("docs",), "readme", {"title": "no text field", "n": 4})
    out.append(s.get(ALICE, "food"))
    out.append(s.get(ALICE, "missing"))
    s.put(ALICE, "home", {"content": "Alice moved to Paris", "kind": "place", "n": 5})
    out.append(s.get(ALICE, "home"))
    out.append(s.search(("users",)))
    out.append(s.search(("users",), filter={"kind": "diet"}))
    out.append(s.search(("users",), filter={"n": {"$gte": 3}}))
    out.append(s.search((), limit=2, filter={"n": {"$lt": 3}}))
    out.append(s.search(("users", "alice")))
    out.append(s.list_namespaces())
    out.append(s.list_namespaces(prefix=("users",)))
    out.append(s.list_namespaces(suffix=("memories",)))
    out.append(s.list_namespaces(prefix=("users", "*", "memories")))
    out.append(s.list_namespaces(max_depth=2))
    s.delete(ALICE, "food")
    out.append(s.get(ALICE, "food"))
    out.append(s.search(("users", "alice")))
    s.delete(ALICE, "never-there")
    s.put(ALICE, "food", {"content": "Alice is vegan now", "n": 6})
    out.append(s.get(ALICE, "food"))
    return [shape(r) for r in out]


def test_answers_like_langgraphs_in_memory_store(store: MemsvcStore) -> None:
    assert script(store) == script(InMemoryStore())


def test_item_times_and_versions(store: MemsvcStore) -> None:
    store.put(ALICE, "k", {"content": "one"})
    first = store.get(ALICE, "k")
    store.put(ALICE, "k", {"content": "two"})
    second = store.get(ALICE, "k")
    assert first is not None and second is not None
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    [memory] = store.client.list_memories(store.cube_id, kind="langgraph_item").items
    assert [v.content for v in store.client.iter_versions(memory.id)] == ["one", "two"]


def test_query_search_ranks_by_meaning(store: MemsvcStore) -> None:
    store.put(ALICE, "food", {"content": "Alice is vegetarian and never eats meat"})
    store.put(ALICE, "home", {"content": "Alice lives in a flat in Lyon"})
    store.put(BOB, "food", {"content": "Bob is vegetarian too"})
    hits = store.search(ALICE, query="what does she eat?")
    assert [h.key for h in hits] == ["food", "home"]
    assert hits[0].score is not None and hits[0].namespace == ALICE
    assert [h.key for h in store.search(ALICE, query="diet", limit=1, offset=1)] == ["home"]


def test_async_api(store: MemsvcStore) -> None:
    async def go() -> list[Any]:
        await store.aput(BOB, "pet", {"content": "Bob has a cat named Tom"})
        got = await store.aget(BOB, "pet")
        hits = await store.asearch(BOB, query="animals")
        spaces = await store.alist_namespaces()
        await store.adelete(BOB, "pet")
        return [got, hits, spaces, await store.aget(BOB, "pet")]

    got, hits, spaces, gone = asyncio.run(go())
    assert got.value == {"content": "Bob has a cat named Tom"}
    assert [h.key for h in hits] == ["pet"] and spaces == [BOB] and gone is None


def test_scripted_agent_loop(store: MemsvcStore, capsys: pytest.CaptureFixture[str]) -> None:
    """Remember three things, recall one, forget one, recall again (as tests/mcp does)."""
    timings: dict[str, list[float]] = {}

    def timed(name: str, fn: Any, *a: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        out = fn(*a, **kw)
        timings.setdefault(name, []).append((time.perf_counter() - start) * 1000)
        return out

    ns = ("agent", "user-42")
    facts = {
        "seat": "The user prefers window seats on flights",
        "diet": "The user is allergic to peanuts",
        "city": "The user lives in Lisbon",
    }
    for key, text in facts.items():
        timed("put", store.put, ns, key, {"content": text})
    [hit, *_] = timed("search", store.search, ns, query="what food must be avoided?")
    assert hit.key == "diet" and hit.value["content"] == facts["diet"]
    timed("delete", store.delete, ns, "diet")
    after = timed("search", store.search, ns, query="what food must be avoided?")
    assert "diet" not in [h.key for h in after] and len(after) == 2
    assert timed("get", store.get, ns, "diet") is None
    with capsys.disabled():
        print({k: f"median {sorted(v)[len(v) // 2]:.1f} ms" for k, v in timings.items()})
