"""Edits raced against the real in-process worker: no spurious 409, no lost update."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from memsvc.cli import worker_hooks
from memsvc.config import JobSettings, Settings
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import sql

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MEMORIES = 300
NAMES = ["Caroline", "Melanie", "Jordan", "Priya", "Tomas", "Aiko"]
PLACES = ["Lisbon", "Denver", "Osaka", "Berlin", "Nairobi"]
# A bound on each wait for the worker (not a speed assertion: past it the test fails loudly
# instead of hanging; the whole run takes ~30-70 s on a busy 2-core machine).
WAIT_S = 240.0


@pytest.fixture()
async def served(settings: Settings, runtime: Any) -> AsyncIterator[Service]:
    """The real app with its in-process worker running, as ``memsvc serve`` starts it."""
    from memsvc.api.app import create_app

    cfg = settings.model_copy(update={"jobs": JobSettings(poll_interval_s=0.02)})
    on_start, on_stop = worker_hooks(cfg)
    assert on_start, "the in-process worker is on by default"
    app = create_app(cfg, runtime=runtime, on_start=on_start, on_stop=on_stop)
    async with app.router.lifespan_context(app):
        key = (cfg.data_dir / "admin.key").read_text().strip()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://memsvc", timeout=120
        ) as client:
            yield Service(app, client, key)


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def _content(i: int) -> str:
    a, b = NAMES[i % len(NAMES)], NAMES[(i * 5 + 1) % len(NAMES)]
    return f"{a} told {b} about the trip to {PLACES[i % len(PLACES)]} number {i}."


async def test_edits_racing_enrichment_are_rebased_and_nothing_is_lost(
    served: Service, database_url: str
) -> None:
    svc = served
    cube = await make_cube(svc)
    created = await add(
        svc,
        cube,
        *[
            {"content": _content(i), "tags": [f"t{i}"], "session_id": f"s{i // 10}"}
            for i in range(MEMORIES)
        ],
    )
    ids = [m["id"] for m in created]

    async def counts() -> dict[str, int]:
        r = await svc.client.get("/v1/jobs", headers=svc.auth())
        return dict(r.json()["counts"])

    async def a_third_enriched() -> bool:
        return (await counts())["done"] >= MEMORIES // 3

    # The edits of the memories enriched by now are made against a version the worker has
    # since moved past; the rest race the worker.
    await _until(a_third_enriched, "a third of the enrichment")

    gate = asyncio.Semaphore(8)
    answers: dict[tuple[int, int], httpx.Response] = {}

    async def edit(i: int, rnd: int, expected: int, body: dict[str, Any]) -> None:
        async with gate:
            answers[(i, rnd)] = await svc.client.patch(
                f"/v1/memories/{ids[i]}",
                json={"expected_version": expected, **body},
                headers=svc.auth(),
            )

    def first_edit(i: int) -> dict[str, Any]:
        return {"content": f"{_content(i)} Edited by the user ({i}).", "metadata": {"r": 1}}

    def second_edit(i: int) -> dict[str, Any]:
        return {"importance": round(i / MEMORIES, 4), "metadata": {"r": 2, "i": i}}

    # Round 1: every memory edited against the version its create answered (1).
    await asyncio.gather(*(edit(i, 1, 1, first_edit(i)) for i in range(MEMORIES)))
    assert sorted({r.status_code for r in answers.values()}) == [200], [
        r.text for r in answers.values() if r.status_code != 200
    ][:3]
    # Round 2: against what round 1 answered, while the worker may still be enriching.
    read = {i: int(answers[(i, 1)].json()["version"]) for i in range(MEMORIES)}
    await asyncio.gather(*(edit(i, 2, read[i], second_edit(i)) for i in range(MEMORIES)))
    codes = [r.status_code for r in answers.values()]
    assert codes.count(409) == 0, [r.text for r in answers.values() if r.status_code == 409][:3]
    assert set(codes) == {200}

    async def idle() -> bool:
        c = await counts()
        return c["queued"] == 0 and c["running"] == 0

    await _until(idle, "the worker to finish")
    c = await counts()
    # Every enrichment, plus the summarise jobs the edits queued (debounced: one per thread).
    assert (c["queued"], c["running"], c["failed"]) == (0, 0, 0) and c["done"] >= MEMORIES

    page = await svc.client.get(f"/v1/cubes/{cube}/memories?limit=1000", headers=svc.auth())
    finals = {m["id"]: m for m in page.json()["items"]}
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sql(
        database_url,
        "SELECT memory_id::text AS id, version, change_kind, content, tags, keywords, context,"
        " importance, metadata, rebased_over FROM memory_version ORDER BY memory_id, version",
    ):
        history[row.id].append(dict(row._mapping))
    rebased = 0
    for i, mid in enumerate(ids):
        final, vers = finals[mid], history[mid]
        kinds = [v["change_kind"] for v in vers]
        assert sorted(kinds) == ["create", "enrich", "update", "update"], (i, kinds)
        assert [v["version"] for v in vers] == [1, 2, 3, 4]
        # Every user edit is in the final version...
        assert final["version"] == 4
        assert final["content"] == first_edit(i)["content"]
        assert (final["importance"], final["metadata"]) == (
            second_edit(i)["importance"],
            second_edit(i)["metadata"],
        )
        # ... and so is everything enrichment wrote.
        [enrich] = [v for v in vers if v["change_kind"] == "enrich"]
        assert final["enrichment_status"] == "done"
        assert final["keywords"] == enrich["keywords"] and final["keywords"]
        assert final["context"] == enrich["context"] and final["context"]
        assert final["tags"] == enrich["tags"] and len(enrich["tags"]) > 1
        assert enrich["tags"][0] == f"t{i}"
        # Each edit says which versions it was rebased over: exactly the system versions
        # between the one it expected and its own.
        for rnd, expected in ((1, 1), (2, read[i])):
            mine = int(answers[(i, rnd)].json()["version"])
            own = vers[mine - 1]
            assert own["change_kind"] == "update"
            assert (own["rebased_over"] or []) == list(range(expected + 1, mine))
            assert all(vers[n - 1]["change_kind"] == "enrich" for n in own["rebased_over"] or [])
            rebased += bool(own["rebased_over"])
    assert rebased >= MEMORIES // 3
    print(f"\n{rebased} of {2 * MEMORIES} edits were rebased over enrichment")
