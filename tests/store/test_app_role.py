"""The service connects as a role of its own, not the superuser (issue 12, hostile input)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from memsvc.config import LimitSettings, Settings
from memsvc.store.db import STATEMENT_TIMEOUT_S, Database, alembic_config, migrate, resolve_url
from memsvc.store.roles import APP_ROLE, prepare_app_role
from tests.api.helpers import add, make_cube, new_tenant_key
from tests.conftest import Service, db_url

pytestmark = pytest.mark.anyio

# What only a superuser (or a role with rights the app role lacks) may do.
FORBIDDEN = [
    "SELECT rolpassword FROM pg_authid",
    "DROP EXTENSION vector",
    "CREATE ROLE memsvc_probe",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "ALTER SYSTEM SET work_mem = '8MB'",
    "CREATE DATABASE memsvc_probe",
]


@pytest.fixture(autouse=True)
def _embedded_only(app_user: str | None) -> None:
    if app_user is None:
        pytest.skip("an external test database's role is used as given")


async def assert_unprivileged(engine: AsyncEngine) -> None:
    """``engine`` connects as the app role, which is no superuser and cannot act like one."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
                    "FROM pg_roles WHERE rolname = current_user"
                )
            )
        ).one()
        assert tuple(row) == (APP_ROLE, False, False, False, False)
        setting = await conn.execute(
            text("SELECT setconfig FROM pg_db_role_setting WHERE setrole = current_user::regrole")
        )
        assert setting.scalar() == [f"statement_timeout={int(STATEMENT_TIMEOUT_S * 1000)}"]
    for statement in FORBIDDEN:
        # Autocommit: ALTER SYSTEM and CREATE DATABASE refuse a transaction block first.
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text(statement))
        assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), statement


async def test_the_service_connects_as_the_app_role(service: Service) -> None:
    await assert_unprivileged(service.app.state.memsvc.db.engine)  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_embedded_default_serves_as_the_app_role(tmp_path: Path, runtime) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from memsvc.api.app import create_app

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=None,
        print_admin_key=False,
        limits=LimitSettings(rate_per_s=0),
    )
    app = create_app(settings, runtime=runtime)
    async with app.router.lifespan_context(app):
        state = app.state.memsvc
        assert state.db.rls
        await assert_unprivileged(state.db.engine)
        key = (settings.data_dir / "admin.key").read_text().strip()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://memsvc") as client:
            service = Service(app, client, key)
            cube = await make_cube(service, "a")
            await add(service, cube, {"content": "the violin lesson is on Tuesday"})
            key_b = await new_tenant_key(service, "tenant-b")
            r = await client.post(
                f"/v1/cubes/{cube}/search", json={"query": "violin"}, headers=service.auth()
            )
            assert [h["memory"]["content"] for h in r.json()["results"]] == [
                "the violin lesson is on Tuesday"
            ]
            r = await client.post(
                f"/v1/cubes/{cube}/search", json={"query": "violin"}, headers=service.auth(key_b)
            )
            assert r.status_code == 404
    # A second start finds the role and the database already handed over.
    url, server = resolve_url(settings)
    try:
        assert make_url(url).username == APP_ROLE
        migrate(url)
    finally:
        server.cleanup()


@pytest.fixture()
def old_database(pg_base_url: str) -> Iterator[str]:
    """A database migrated by the superuser, as versions before the app role left it (at
    0013, so that the app role applies later migrations that make tables)."""
    name = f"o_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = db_url(pg_base_url, name)
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0013")
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


NOT_APP_OWNED = text(
    """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relowner <> 'memsvc_app'::regrole
    UNION ALL
    SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public' AND p.proowner <> 'memsvc_app'::regrole
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                        AND d.deptype = 'e')
    """
)


async def test_an_old_database_is_handed_to_the_app_role(old_database: str) -> None:
    admin = create_engine(old_database)
    with admin.begin() as conn:
        tenant = conn.execute(
            text("INSERT INTO tenant (id, name) VALUES (gen_random_uuid(), 'old') RETURNING id")
        ).scalar_one()
        assert conn.execute(NOT_APP_OWNED).scalars().all()
    for _ in range(2):  # idempotent: every start runs it
        url = prepare_app_role(old_database, statement_timeout_s=STATEMENT_TIMEOUT_S)
        migrate(url)
    with admin.connect() as conn:
        assert conn.execute(NOT_APP_OWNED).scalars().all() == []
    admin.dispose()

    db = Database.connect(url)
    try:
        assert await db.detect_rls()
        await assert_unprivileged(db.engine)
        async with db.transaction() as s:
            # As the tables' owner the app role sees across tenants (key lookup, worker).
            assert (await s.execute(text("SELECT count(*) FROM tenant"))).scalar() == 1
            await s.execute(text("CREATE TABLE probe (tenant_id uuid)"))
        async with db.tenant_transaction(tenant) as s:
            assert (await s.execute(text("SELECT name FROM tenant"))).scalars().all() == ["old"]
            # Tables the app role makes (migrations 0014 on, here) are open to the tenant
            # role, as the superuser's were.
            for table in ("tenant_limit", "tenant_write_usage", "llm_usage", "probe"):
                assert (await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 0
    finally:
        await db.close()


async def test_a_superuser_url_is_warned_about(
    database_url: str, pg_base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    superuser = make_url(database_url).set(username=make_url(pg_base_url).username)
    for url, warned in [
        (superuser.render_as_string(hide_password=False), True),
        (database_url, False),
    ]:
        db = Database.connect(url)
        caplog.clear()
        try:
            with caplog.at_level(logging.WARNING, logger="memsvc.store.db"):
                assert await db.warn_if_superuser() is warned
        finally:
            await db.close()
        assert ("the database user is a superuser" in caplog.text) is warned
