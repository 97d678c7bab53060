"""Migration 0024: vectors stay in their row (STORAGE PLAIN), so an exact scan does not
fetch each one from the TOAST table; vectors written out of line before are moved in."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from memsvc.config import Settings
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.store.test_migration_clamp_times import _to

pytestmark = pytest.mark.anyio

# Wide enough that the row passes the ~2 KB toast threshold with its vector.
LONG = " ".join(f"word{i} of a long message about the garden" for i in range(40))

OUT_OF_LINE = "SELECT count(*) FROM memory WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL"
STORAGE = (
    "SELECT attstorage FROM pg_attribute WHERE attrelid = CAST(:t AS regclass)"
    " AND attname = 'embedding'"
)


async def test_vectors_are_stored_inline_and_old_ones_are_moved_in(
    service: Service, settings: Settings
) -> None:
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    engine = create_engine(url)
    try:
        cube = await make_cube(service)
        await add(service, cube, {"content": LONG})
        with engine.begin() as conn:
            assert conn.execute(text(OUT_OF_LINE)).scalar() == 0
            for table in ("memory", "memory_passage"):
                assert conn.execute(text(STORAGE), {"t": table}).scalar() == "p"
        # Before the migration pgvector's EXTERNAL storage put a wide row's vector out of
        # line.
        _to(url, "0023", down=True)
        await add(service, cube, {"content": LONG + " again"})
        with engine.begin() as conn:
            assert conn.execute(text(OUT_OF_LINE)).scalar() == 1
            before = conn.execute(text("SELECT id, embedding::text FROM memory ORDER BY id")).all()
        _to(url, "head")
        with engine.begin() as conn:
            assert conn.execute(text(OUT_OF_LINE)).scalar() == 0
            after = conn.execute(text("SELECT id, embedding::text FROM memory ORDER BY id")).all()
        assert after == before  # the same vectors, to the last digit
    finally:
        engine.dispose()
