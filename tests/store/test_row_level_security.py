"""The second wall: even a query with no tenant filter sees only the caller's rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from memsvc.store.db import Database
from tests.api.helpers import add, make_cube, new_tenant_key
from tests.conftest import Service

pytestmark = pytest.mark.anyio


async def tenant_ids(db: Database) -> dict[str, Any]:
    """Every tenant's id by name (an unscoped transaction sees them all)."""
    async with db.transaction() as s:
        return {name: tid for tid, name in await s.execute(text("SELECT id, name FROM tenant"))}


async def test_unfiltered_queries_see_only_the_scoped_tenant(
    service: Service, database_url: str
) -> None:
    cube_a = await make_cube(service, "a")
    await add(service, cube_a, {"content": "tenant A memory"}, {"content": "another A memory"})
    key_b = await new_tenant_key(service, "tenant-b")
    cube_b = await make_cube(service, "b", key=key_b)
    await add(service, cube_b, {"content": "tenant B memory"}, key=key_b)

    db = Database.connect(database_url)
    try:
        assert await db.detect_rls()
        tenants = await tenant_ids(db)
        async with db.transaction() as s:
            assert (await s.execute(text("SELECT count(*) FROM memory"))).scalar() == 3
        async with db.tenant_transaction(tenants["tenant-b"]) as s:
            rows = (await s.execute(text("SELECT content FROM memory"))).scalars().all()
            assert rows == ["tenant B memory"]
            assert (await s.execute(text("SELECT count(*) FROM memory_version"))).scalar() == 1
            assert (await s.execute(text("SELECT name FROM tenant"))).scalars().all() == [
                "tenant-b"
            ]
            assert (await s.execute(text("SELECT count(*) FROM cube"))).scalar() == 1
        with pytest.raises(Exception, match="row-level security"):
            async with db.tenant_transaction(tenants["tenant-b"]) as s:
                await s.execute(
                    text(
                        "INSERT INTO cube (id, tenant_id, name, description, metadata) "
                        "VALUES (gen_random_uuid(), :t, 'sneaky', '', '{}')"
                    ),
                    {"t": tenants["default"]},
                )
    finally:
        await db.close()


async def test_fulltext_lookup_answers_only_for_the_scoped_tenant(
    service: Service, database_url: str
) -> None:
    # memsvc_fulltext_ids runs as the table owner (so the GIN index can serve lexical
    # queries under RLS); it must still refuse another tenant's cube.
    cube_a = await make_cube(service, "a")
    await add(service, cube_a, {"content": "the violin lesson"})
    key_b = await new_tenant_key(service, "tenant-b")
    cube_b = await make_cube(service, "b", key=key_b)
    await add(service, cube_b, {"content": "tenant B violin secret"}, key=key_b)
    lookup = text("SELECT count(*) FROM memsvc_fulltext_ids(:t, :c, to_tsquery('violin'))")

    db = Database.connect(database_url)
    try:
        assert await db.detect_rls()
        tenants = await tenant_ids(db)
        a, b = tenants["default"], tenants["tenant-b"]
        async with db.tenant_transaction(a) as s:
            assert (await s.execute(lookup, {"t": a, "c": cube_a})).scalar() == 1
            assert (await s.execute(lookup, {"t": b, "c": cube_b})).scalar() == 0
            assert (await s.execute(lookup, {"t": a, "c": cube_b})).scalar() == 0
        async with db.tenant_transaction(b) as s:
            assert (await s.execute(lookup, {"t": b, "c": cube_b})).scalar() == 1
            assert (await s.execute(lookup, {"t": a, "c": cube_a})).scalar() == 0
        async with db.transaction() as s:  # the service's own unscoped sessions (workers)
            assert (await s.execute(lookup, {"t": b, "c": cube_b})).scalar() == 1
    finally:
        await db.close()
