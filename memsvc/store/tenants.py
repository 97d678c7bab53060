"""Tenants and API keys (only a SHA-256 hash of each key is stored)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import Conflict, Forbidden, NotFound
from memsvc.schemas import KeyCreated, KeyPage, KeyRead, Role, TenantPage, TenantRead
from memsvc.store.models import ApiKey, AuditLog, RevokedSession, Tenant
from memsvc.store.pagination import fetch_page

KEY_PREFIX = "msk_"
DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant every query is scoped by, the key, and its role.

    An operator's ``tenant_id`` is the tenant it acts on (its own, or ``X-Tenant-Id``)."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    role: Role

    @property
    def admin(self) -> bool:
        """May manage keys: a tenant admin (its own tenant's) or the operator (any)."""
        return self.role in ("admin", "operator")

    @property
    def operator(self) -> bool:
        """Service-wide: tenants and any tenant's keys."""
        return self.role == "operator"

    @property
    def actor(self) -> str:
        """How this caller is named in version history and audit rows."""
        return f"key:{self.key_id}"


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _split(raw: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    if not raw.startswith(KEY_PREFIX):
        return None
    parts = raw[len(KEY_PREFIX) :].split("_", 1)
    return parts[0] if len(parts) == 2 and len(parts[0]) == 12 else None


async def create_tenant(session: AsyncSession, *, name: str) -> TenantRead:
    """A new tenant; the name is unique (409 otherwise)."""
    tenant = Tenant(name=name)
    session.add(tenant)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"tenant {name!r} exists", code="tenant_exists") from exc
    return TenantRead(id=tenant.id, name=tenant.name)


async def get_tenant(session: AsyncSession, *, tenant_id: uuid.UUID) -> TenantRead:
    """One tenant by id."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return TenantRead(id=tenant.id, name=tenant.name)


async def exists(session: AsyncSession, *, tenant_id: uuid.UUID) -> bool:
    """Whether the tenant exists."""
    return (await session.get(Tenant, tenant_id)) is not None


async def list_tenants(session: AsyncSession, *, cursor: str | None, limit: int) -> TenantPage:
    """Every tenant, oldest first (operator only)."""
    page, nxt = await fetch_page(
        session, select(Tenant), Tenant.created_at, Tenant.id, cursor=cursor, limit=limit
    )
    return TenantPage(items=[TenantRead.model_validate(t) for t in page], next_cursor=nxt)


async def create_key(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, role: Role, actor: str
) -> KeyCreated:
    """A new key; the secret is returned here and never again."""
    await get_tenant(session, tenant_id=tenant_id)
    prefix = secrets.token_hex(6)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(tenant_id=tenant_id, name=name, prefix=prefix, key_hash=_hash(raw), role=role)
    session.add(key)
    session.add(
        AuditLog(
            tenant_id=tenant_id,
            actor=actor,
            action="key.create",
            target_id=str(key.id),
            detail={"name": name, "role": role},
        )
    )
    await session.flush()
    return KeyCreated(id=key.id, key=raw, tenant_id=tenant_id, name=name, role=role)


async def authenticate(session: AsyncSession, *, raw_key: str) -> Principal | None:
    """The principal for a presented key, or None when it is unknown or revoked."""
    prefix = _split(raw_key)
    if prefix is None:
        return None
    key = (
        await session.execute(
            select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        )
    ).scalar_one_or_none()
    if key is None or not hmac.compare_digest(key.key_hash, _hash(raw_key)):
        return None
    return Principal(tenant_id=key.tenant_id, key_id=key.id, role=key.role)  # type: ignore[arg-type]


async def list_keys(
    session: AsyncSession, *, tenant_id: uuid.UUID, cursor: str | None, limit: int
) -> KeyPage:
    """The tenant's keys (without secrets), oldest first."""
    stmt = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    page, nxt = await fetch_page(
        session, stmt, ApiKey.created_at, ApiKey.id, cursor=cursor, limit=limit
    )
    return KeyPage(items=[KeyRead.model_validate(r) for r in page], next_cursor=nxt)


async def revoke_key(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    key_id: uuid.UUID,
    actor: str,
    operator: bool = False,
) -> None:
    """Revoke a key of the tenant (404 when absent or another tenant's); only an operator
    revokes an operator key."""
    role = (
        await session.execute(
            select(ApiKey.role).where(
                ApiKey.id == key_id, ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if role is None:
        raise NotFound("key not found")
    if role == "operator" and not operator:
        raise Forbidden("only an operator key may revoke an operator key")
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=func.now()))
    session.add(
        AuditLog(tenant_id=tenant_id, actor=actor, action="key.revoke", target_id=str(key_id))
    )


async def bootstrap(session: AsyncSession) -> KeyCreated | None:
    """On an empty database: tenant ``default`` and the operator key (else None)."""
    await session.execute(select(func.pg_advisory_xact_lock(7286002)))
    if (await session.execute(select(Tenant.id).limit(1))).first() is not None:
        return None
    tenant = await create_tenant(session, name=DEFAULT_TENANT)
    return await create_key(
        session,
        tenant_id=tenant.id,
        name="bootstrap operator",
        role="operator",
        actor="system:bootstrap",
    )


# --- admin view sign-in sessions ---------------------------------------------------------


async def session_is_live(
    session: AsyncSession, *, tenant_id: uuid.UUID, key_id: uuid.UUID, session_id: str
) -> bool:
    """Whether a session's key is live and the session was not signed out."""
    revoked = select(RevokedSession.id).where(RevokedSession.id == session_id).exists()
    row = await session.execute(
        select(ApiKey.id).where(
            ApiKey.id == key_id,
            ApiKey.tenant_id == tenant_id,
            ApiKey.revoked_at.is_(None),
            ~revoked,
        )
    )
    return row.first() is not None


async def revoke_session(session: AsyncSession, *, session_id: str, expires: int) -> None:
    """Sign a session out for good (until its cookie would have expired); forget the
    revocations whose cookies have expired since."""
    now = datetime.now(UTC)
    await session.execute(delete(RevokedSession).where(RevokedSession.expires_at < now))
    until = datetime.fromtimestamp(expires, UTC)
    await session.execute(
        insert(RevokedSession)
        .values(id=session_id, expires_at=until)
        .on_conflict_do_nothing(index_elements=[RevokedSession.id])
    )
