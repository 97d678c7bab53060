"""``memsvc keys create`` makes member, tenant admin and operator keys."""

from __future__ import annotations

import asyncio

import pytest

from memsvc.cli import _create_key, build_parser
from memsvc.config import Settings
from memsvc.store import tenants
from memsvc.store.db import Database


async def _role_of(settings: Settings, raw: str) -> tuple[str, str]:
    db = Database.connect(settings.database_url.get_secret_value())  # type: ignore[union-attr]
    try:
        async with db.transaction() as s:
            p = await tenants.authenticate(s, raw_key=raw)
            assert p is not None
            return p.role, (await tenants.get_tenant(s, tenant_id=p.tenant_id)).name
    finally:
        await db.close()


def test_keys_create_with_each_role(settings: Settings) -> None:
    parser = build_parser()
    for flags, role in (([], "member"), (["--admin"], "admin"), (["--operator"], "operator")):
        args = parser.parse_args(["keys", "create", "--tenant", "acme", *flags])
        picked = "operator" if args.operator else "admin" if args.admin else "member"
        assert picked == role
        raw = asyncio.run(_create_key(settings, "acme", role, "cli"))  # type: ignore[arg-type]
        assert asyncio.run(_role_of(settings, raw)) == (role, "acme")
    # The first run bootstrapped the service: its first key is the operator's.
    first = (settings.data_dir / "admin.key").read_text().strip()
    assert asyncio.run(_role_of(settings, first)) == ("operator", "default")


def test_admin_and_operator_are_exclusive() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["keys", "create", "--tenant", "t", "--admin", "--operator"])
