"""Migration 0015: times stored before requests were checked no longer poison their cube."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from memsvc.config import Settings
from memsvc.store.db import alembic_config
from tests.api.helpers import add, make_cube
from tests.conftest import Service

pytestmark = pytest.mark.anyio


def _to(url: str, revision: str, *, down: bool = False) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
    engine.dispose()


async def test_a_poisoned_memory_reads_again_after_the_migration(
    service: Service, settings: Settings
) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "x", "valid_to": "2030-01-01T00:00:00Z"})
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    engine = create_engine(url)
    with engine.begin() as conn:
        # What the API stored before it checked dates (year 0 and year 10000 in UTC).
        conn.execute(
            text(
                "UPDATE memory SET valid_from = '0001-01-01 00:00:00+14', "
                "valid_to = '9999-12-31 23:00:00-14', occurred_at = '0001-01-01 00:00:00+14' "
                "WHERE id = :id"
            ),
            {"id": mem["id"]},
        )
        conn.execute(
            text(
                "UPDATE memory_version SET valid_from = '0001-01-01 00:00:00+14' "
                "WHERE memory_id = :id"
            ),
            {"id": mem["id"]},
        )
    engine.dispose()
    poisoned = await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())
    assert poisoned.status_code == 500
    _to(url, "0013", down=True)
    _to(url, "head")
    for path in (
        f"/v1/memories/{mem['id']}",
        f"/v1/memories/{mem['id']}/versions",
        f"/v1/cubes/{cube}/memories",
    ):
        resp = await service.client.get(path, headers=service.auth())
        assert resp.status_code == 200, resp.text
    got = (await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())).json()
    assert got["valid_from"].startswith("0001-01-02")
    assert got["valid_to"].startswith("9999-12-30")
