"""Every statement of the app's connections is cancelled after 30 s (issue 12, item 9)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from memsvc.store.db import Database

pytestmark = pytest.mark.anyio


async def test_app_connections_carry_a_statement_timeout(database_url: str) -> None:
    from memsvc.store.db import sqlalchemy_url

    db = Database.connect(sqlalchemy_url(database_url))
    try:
        async with db.transaction() as s:
            assert (await s.execute(text("SHOW statement_timeout"))).scalar() == "30s"
    finally:
        await db.close()
    quick = Database.connect(sqlalchemy_url(database_url), statement_timeout_s=0.2)
    try:
        with pytest.raises(Exception, match="statement timeout"):
            async with quick.transaction() as s:
                await s.execute(text("SELECT pg_sleep(2)"))
    finally:
        await quick.close()
