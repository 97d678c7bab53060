"""Fresh planner statistics for the tables a search reads, while the service runs.

Postgres plans from statistics that autovacuum refreshes about once a minute at best, and
only after a tenth of a table has changed. A table that grew from nearly nothing (a new
database, a first conversation written in a burst) is planned as if it were still empty,
and a statement prepared meanwhile keeps that plan: on a 419-memory cube written in five
requests and searched at once, a ``fast`` search took 110 ms (its rows-with-sources
statement 100-130 ms) until autovacuum came by, and 14 ms once the tables were analysed.
``StatsKeeper`` checks ``pg_stat_user_tables`` every few seconds and analyses the tables
whose changes since their last analysis are many against their size (ANALYZE also drops
plans cached from the old statistics). Large tables are left to autovacuum: a few writes
never make a tenth of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from memsvc.store.background import Background
from memsvc.store.db import Database

log = logging.getLogger(__name__)

# The tables a search or a write reads through plans that depend on their size.
TABLES = (
    "memory",
    "memory_passage",
    "memory_source",
    "source",
    "memory_version",
    "link",
    "job",
)
# A table is analysed once this many rows changed since its last analysis, and at least
# this share of its rows (autovacuum's defaults: 50 rows and 10 %, checked every minute).
MIN_CHANGED = 100
MIN_SHARE = 0.2

_CHANGED = text(
    "SELECT relname, n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables"
    " WHERE schemaname = current_schema() AND relname = ANY(:tables)"
)


@dataclass(frozen=True)
class TableChange:
    table: str
    changed: int
    rows: int

    @property
    def stale(self) -> bool:
        return self.changed >= MIN_CHANGED and self.changed >= MIN_SHARE * self.rows


async def _stale(conn: AsyncConnection, tables: Sequence[str]) -> list[TableChange]:
    rows = (await conn.execute(_CHANGED, {"tables": list(tables)})).all()
    changes = [TableChange(r.relname, int(r.n_mod_since_analyze), int(r.n_live_tup)) for r in rows]
    return [c for c in changes if c.stale]


async def stale_tables(db: Database, tables: Sequence[str] = TABLES) -> list[TableChange]:
    """The tables whose statistics lag far behind what was written since."""
    async with db.engine.connect() as conn:
        return await _stale(conn, tables)


async def refresh(db: Database, tables: Sequence[str] = TABLES) -> list[str]:
    """Analyse the stale ones among ``tables`` (one connection for the check and the
    ANALYZE); the names analysed. A database user that does not own a table gets a warning
    from Postgres for it, not an error."""
    async with db.engine.connect() as conn:
        stale = await _stale(conn, tables)
        if not stale:
            return []
        names = [c.table for c in stale]
        # Names from the fixed TABLES list only, never from input.
        await conn.execute(text(f"ANALYZE {', '.join(names)}"))
        await conn.commit()
    log.debug("analysed %s", ", ".join(f"{c.table} (+{c.changed}/{c.rows})" for c in stale))
    return names


class StatsKeeper(Background):
    """Runs ``refresh`` every ``interval_s`` while the app runs (0: never); errors are
    logged, never raised (a database outage is the health check's business)."""

    task_name = "memsvc-planner-stats"

    def __init__(self, db: Database, *, interval_s: float = 5.0) -> None:
        super().__init__()
        self.db = db
        self.interval_s = interval_s
        self.analysed = 0

    def start(self) -> None:
        if self.interval_s > 0:
            super().start()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.analysed += len(await refresh(self.db))
            except Exception:  # named boundary: housekeeping never takes the service down
                log.warning("could not refresh planner statistics", exc_info=True)
