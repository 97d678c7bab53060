"""Helpers of the graph tests: a worker over the running app's state, direct DB reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text

from memsvc.config import Settings
from memsvc.jobs.worker import Worker
from memsvc.llm import LLM
from memsvc.state import AppState
from tests.conftest import Service


def app_state(svc: Service) -> AppState:
    state: AppState = svc.app.state.memsvc  # type: ignore[attr-defined]
    return state


def worker_for(
    svc: Service,
    *,
    llm: LLM | None = None,
    worker_id: str = "test",
    settings: Settings | None = None,
) -> Worker:
    """A worker over the app's database (heuristic mode unless ``llm`` is given)."""
    state = app_state(svc)
    return Worker(
        state.db,
        settings or state.settings,
        runtime=state.runtime,
        llm=llm,
        worker_id=worker_id,
    )


def sql(url: str, query: str, **params: Any) -> list[Any]:
    """Rows of a query on the test database (a short-lived sync connection)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            res = conn.execute(text(query), params)
            return list(res) if res.returns_rows else []
    finally:
        engine.dispose()


async def versions(svc: Service, memory_id: str) -> list[dict[str, Any]]:
    resp = await svc.client.get(f"/v1/memories/{memory_id}/versions", headers=svc.auth())
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


async def links_of(svc: Service, memory_id: str) -> list[dict[str, Any]]:
    resp = await svc.client.get(f"/v1/memories/{memory_id}/links", headers=svc.auth())
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])
