"""Migration 0013: admin keys become tenant admins, the first-start key the operator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from memsvc.store.db import alembic_config
from tests.conftest import db_url


@pytest.fixture()
def empty_url(pg_base_url: str) -> Iterator[str]:
    """A database with no migrations applied."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield db_url(pg_base_url, name)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def _to(url: str, revision: str, *, down: bool = False) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
    engine.dispose()


def test_roles_from_admin_flags_and_back(empty_url: str) -> None:
    _to(empty_url, "0012")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        d = conn.execute(
            text("INSERT INTO tenant (id, name) VALUES (gen_random_uuid(), 'default') RETURNING id")
        ).scalar_one()
        b = conn.execute(
            text("INSERT INTO tenant (id, name) VALUES (gen_random_uuid(), 'b') RETURNING id")
        ).scalar_one()
        keys = {}
        for name, tenant, admin in [
            ("boot", d, True),
            ("d-admin", d, True),
            ("b-admin", b, True),
            ("b-member", b, False),
        ]:
            keys[name] = conn.execute(
                text(
                    "INSERT INTO api_key (id, tenant_id, name, prefix, key_hash, admin) "
                    "VALUES (gen_random_uuid(), :t, :n, :n, 'h', :a) RETURNING id"
                ),
                {"t": tenant, "n": name, "a": admin},
            ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO audit_log (tenant_id, actor, action, target_id, detail) VALUES "
                "(:t, 'system:bootstrap', 'key.create', :k, '{}')"
            ),
            {"t": d, "k": str(keys["boot"])},
        )
    _to(empty_url, "0013")
    with engine.connect() as conn:
        roles = dict(conn.execute(text("SELECT name, role FROM api_key")).all())
    assert roles == {
        "boot": "operator",
        "d-admin": "admin",
        "b-admin": "admin",
        "b-member": "member",
    }
    _to(empty_url, "0012", down=True)
    with engine.connect() as conn:
        admins = dict(conn.execute(text("SELECT name, admin FROM api_key")).all())
    engine.dispose()
    assert admins == {"boot": True, "d-admin": True, "b-admin": True, "b-member": False}
