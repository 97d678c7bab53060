"""The deep preset with a cross-encoder (MiniLM backbone, untrained head) through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memsvc.config import ModelSettings, Settings
from memsvc.runtime import ModelRuntime, build_runtime
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.retrieval.test_search import FACTS, contents

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def rerank_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRuntime]:
    import torch
    from sentence_transformers import CrossEncoder

    from memsvc.runtime.loading import resolve_model_path

    torch.manual_seed(0)  # the untrained head is random: fix it so the order is fixed
    model = CrossEncoder(resolve_model_path("packaged:all-MiniLM-L6-v2"), num_labels=1)
    path = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(path))
    rt = build_runtime(ModelSettings(reranker=str(path), batch_size=8))
    yield rt
    rt.close()


@pytest.fixture()
async def rerank_service(
    settings: Settings, rerank_runtime: ModelRuntime
) -> AsyncIterator[Service]:
    from memsvc.api.app import create_app

    app = create_app(settings, runtime=rerank_runtime)
    async with app.router.lifespan_context(app):
        key = (Path(settings.data_dir) / "admin.key").read_text().strip()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://memsvc"
        ) as client:
            yield Service(app, client, key)


async def _search(svc: Service, cube: str, **body: Any) -> dict[str, Any]:
    resp = await svc.client.post(f"/v1/cubes/{cube}/search", json=body, headers=svc.auth())
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_deep_reranks_deterministically(
    rerank_service: Service, rerank_runtime: ModelRuntime
) -> None:
    svc = rerank_service
    cube = await make_cube(svc)
    await add(svc, cube, *({"content": c} for c in FACTS))
    query = "Who painted a sunrise?"
    deep = await _search(svc, cube, query=query, preset="deep", explain=True)
    hybrid = await _search(svc, cube, query=query, preset="hybrid")
    assert deep["reranked"] is True and deep["notes"] == []
    # The order is the cross-encoder's: the same scores computed directly, best first.
    scores = rerank_runtime.rerank_sync(query, FACTS)
    assert scores is not None
    expected = [c for _, c in sorted(zip(scores, FACTS, strict=True), key=lambda t: -t[0])]
    assert contents(deep) == expected
    assert contents(deep) != contents(hybrid)
    assert [r["score"] for r in deep["results"]] == pytest.approx(sorted(scores, reverse=True))
    assert all("rerank" in r["explain"] for r in deep["results"])
    assert [r["explain"]["rerank"]["rank"] for r in deep["results"]] == list(range(1, 7))
    again = await _search(svc, cube, query=query, preset="deep")
    assert contents(again) == contents(deep)


async def test_ask_reranks_its_first_pass_when_a_reranker_is_configured(
    rerank_service: Service,
) -> None:
    from tests.retrieval.test_ask import ask, conversation, trace

    cube = await make_cube(rerank_service)
    mems = await conversation(rerank_service, cube)
    body = await ask(rerank_service, cube, question="Is Caroline researching adoption agencies?")
    first = (await trace(rerank_service, body["trace_id"]))["steps"][0]
    assert (first["kind"], first["note"]) == ("retrieve", "reranked by the cross-encoder")
    assert set(first["found"]) == {m["id"] for m in mems}
