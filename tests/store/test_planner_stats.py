"""Planner statistics are refreshed while the service runs, once a table changed much."""

from __future__ import annotations

import asyncio

import pytest

from memsvc.store import planner_stats
from memsvc.store.planner_stats import StatsKeeper, TableChange
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import sql

pytestmark = pytest.mark.anyio


async def test_a_table_is_stale_when_many_of_its_rows_changed() -> None:
    assert TableChange("memory", changed=150, rows=0).stale  # grew from empty
    assert TableChange("memory", changed=400, rows=1_000).stale
    assert not TableChange("memory", changed=99, rows=0).stale  # too few to matter
    assert not TableChange("memory", changed=150, rows=1_000).stale  # autovacuum's share


def analyses(url: str, table: str) -> int:
    rows = sql(url, "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :t", t=table)
    return int(rows[0][0])


async def test_tables_that_grew_from_empty_are_analysed(
    service: Service, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = service.app.state.memsvc.db  # type: ignore[attr-defined]
    keeper = service.app.state.memsvc.extras["planner_stats"]  # type: ignore[attr-defined]
    await keeper.stop()  # this test drives it
    monkeypatch.setattr(planner_stats, "MIN_CHANGED", 20)
    before = analyses(database_url, "memory")
    cube = await make_cube(service, "burst")
    await add(service, cube, *({"content": f"note {i} about the garden"} for i in range(30)))

    # Counters reach pg_stat_user_tables within about a second of the writes' commit.
    keeper = StatsKeeper(db, interval_s=0.2)
    keeper.start()
    try:
        for _ in range(50):
            if keeper.analysed:
                break
            await asyncio.sleep(0.1)
    finally:
        await keeper.stop()
    assert keeper.analysed >= 1
    assert analyses(database_url, "memory") > before
    assert await planner_stats.stale_tables(db) == []  # nothing left to analyse
    assert await planner_stats.refresh(db) == []
