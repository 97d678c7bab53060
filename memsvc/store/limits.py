"""Per-tenant limits (``tenant_limit``) and the daily write count (``tenant_write_usage``)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.config import LimitSettings
from memsvc.schemas import EffectiveLimits, TenantLimits, TenantLimitsRead
from memsvc.store.models import TenantLimit, TenantWriteUsage

# The overridable limits: TenantLimits' fields, tenant_limit's columns, LimitSettings' names.
FIELDS = tuple(TenantLimits.model_fields)


async def overrides(session: AsyncSession, *, tenant_id: uuid.UUID) -> TenantLimits:
    """The tenant's overrides (all None when it has none)."""
    row = await session.get(TenantLimit, tenant_id)
    if row is None:
        return TenantLimits()
    return TenantLimits.model_validate({f: getattr(row, f) for f in FIELDS})


def effective(own: TenantLimits, defaults: LimitSettings) -> EffectiveLimits:
    """The limits that apply: the tenant's overrides, else the server's defaults."""
    return EffectiveLimits.model_validate(
        {
            f: getattr(own, f) if getattr(own, f) is not None else getattr(defaults, f)
            for f in FIELDS
        }
    )


async def set_overrides(
    session: AsyncSession, *, tenant_id: uuid.UUID, limits: TenantLimits
) -> None:
    """Replace the tenant's overrides (None fields: back to the server's default)."""
    values = {f: getattr(limits, f) for f in FIELDS}
    stmt = insert(TenantLimit).values(tenant_id=tenant_id, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[TenantLimit.tenant_id],
            set_={**values, "updated_at": func.now()},
        )
    )


async def writes_on(session: AsyncSession, *, tenant_id: uuid.UUID, day: date) -> int:
    """Memories the tenant created on ``day`` (as counted for the quota)."""
    row = await session.execute(
        select(TenantWriteUsage.writes).where(
            TenantWriteUsage.tenant_id == tenant_id, TenantWriteUsage.day == day
        )
    )
    return int(row.scalar() or 0)


async def reserve_writes(
    session: AsyncSession, *, tenant_id: uuid.UUID, day: date, n: int, quota: int
) -> bool:
    """Count ``n`` writes on ``day`` if that keeps the tenant within ``quota`` (atomic
    against concurrent writers); False, counting nothing, when it would not."""
    if n > quota:
        return False
    stmt = insert(TenantWriteUsage).values(tenant_id=tenant_id, day=day, writes=n)
    row = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[TenantWriteUsage.tenant_id, TenantWriteUsage.day],
            set_={"writes": TenantWriteUsage.writes + n},
            where=TenantWriteUsage.writes + n <= quota,
        ).returning(TenantWriteUsage.writes)
    )
    return row.first() is not None


async def refund_writes(session: AsyncSession, *, tenant_id: uuid.UUID, day: date, n: int) -> None:
    """Give back ``n`` reserved writes whose request failed."""
    await session.execute(
        update(TenantWriteUsage)
        .where(TenantWriteUsage.tenant_id == tenant_id, TenantWriteUsage.day == day)
        .values(writes=TenantWriteUsage.writes - n)
    )


async def read(
    session: AsyncSession, *, tenant_id: uuid.UUID, defaults: LimitSettings, day: date
) -> TenantLimitsRead:
    """The tenant's overrides, the limits that apply and today's write count."""
    own = await overrides(session, tenant_id=tenant_id)
    return TenantLimitsRead(
        tenant_id=tenant_id,
        **own.model_dump(),
        effective=effective(own, defaults),
        writes_today=await writes_on(session, tenant_id=tenant_id, day=day),
    )
