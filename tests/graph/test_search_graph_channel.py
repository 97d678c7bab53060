"""Search's graph channel: 1-hop expansion along links from the best hits."""

from __future__ import annotations

import pytest

from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import worker_for

pytestmark = pytest.mark.anyio


async def search(svc: Service, cube: str, config: dict[str, object]) -> list[dict[str, object]]:
    resp = await svc.client.post(
        f"/v1/cubes/{cube}/search",
        json={
            "query": "What dog does Caroline have?",
            "top_k": 5,
            "config": config,
            "explain": True,
        },
        headers=svc.auth(),
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json()["results"])


async def test_graph_channel_returns_a_linked_memory(service: Service) -> None:
    cube = await make_cube(service)
    dog, shelter, _tax = await add(
        service,
        cube,
        {"content": "Caroline adopted a golden retriever named Max.", "session_id": "s1"},
        {"content": "We picked him up from a shelter in Portland last spring.", "session_id": "s1"},
        {"content": "The quarterly tax report is due on Friday.", "session_id": "s2"},
    )
    await worker_for(service).run_until_idle()  # heuristic: shelter follows dog

    plain = {"vector": {"depth": 1}, "fulltext": None}
    assert [r["memory"]["id"] for r in await search(service, cube, plain)] == [dog["id"]]

    graph = {**plain, "graph": {"weight": 0.5, "depth": 10}}
    results = await search(service, cube, graph)
    assert [r["memory"]["id"] for r in results] == [dog["id"], shelter["id"]]
    assert set(results[1]["explain"]) == {"graph"}  # type: ignore[arg-type]
    assert results[1]["explain"]["graph"]["rank"] == 1  # type: ignore[index]

    # Filters hold in the graph channel too: a deleted neighbour is not expanded to.
    await service.client.delete(f"/v1/memories/{shelter['id']}", headers=service.auth())
    assert [r["memory"]["id"] for r in await search(service, cube, graph)] == [dog["id"]]
