"""Tenants and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictInt, computed_field, model_validator

from memsvc.schemas.ask import MAX_CYCLES, MAX_DEADLINE_MS, MAX_LLM_CALLS, MAX_TOKENS
from memsvc.schemas.common import Page, ReadModel, WireModel


class TenantCreate(WireModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class TenantRead(ReadModel):
    id: uuid.UUID
    name: str


TenantPage = Page[TenantRead]

# operator: service-wide (tenants, any tenant's keys; acts on a tenant by ``X-Tenant-Id``);
# admin: keys and data of its own tenant; member: data of its own tenant.
Role = Literal["operator", "admin", "member"]


class KeyCreate(WireModel):
    tenant_id: uuid.UUID | None = None  # default: the caller's tenant
    name: str = Field(default="key", min_length=1, max_length=200)
    # ``admin: true`` is the older spelling of ``role: "admin"``; ``role`` wins when both.
    admin: bool = False
    role: Role | None = None

    def resolved_role(self) -> Role:
        """The role asked for (``member`` when neither field says)."""
        return self.role or ("admin" if self.admin else "member")


class _Keyed(ReadModel):
    role: Role

    @model_validator(mode="before")
    @classmethod
    def _role_from_admin(cls, data: Any) -> Any:
        # A server from before roles answers ``admin`` only.
        if isinstance(data, dict) and "role" not in data:
            return {**data, "role": "admin" if data.get("admin") else "member"}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def admin(self) -> bool:
        """Whether the key may manage keys (a tenant admin or the operator)."""
        return self.role in ("admin", "operator")


class KeyCreated(_Keyed):
    """Returned once at creation: ``key`` is the secret and is never shown again."""

    id: uuid.UUID
    key: str
    tenant_id: uuid.UUID
    name: str


class KeyRead(_Keyed):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


KeyPage = Page[KeyRead]


# Bounds of the per-tenant limits (anything larger is refused with 422).
MAX_RATE_PER_S = 1_000_000.0
MAX_BURST = 1_000_000_000
MAX_DAILY_WRITES = 1_000_000_000_000


class TenantLimits(WireModel):
    """A tenant's overrides of the server's limits; null: the server's default.

    ``rate_per_s``/``rate_burst``: requests a second per API key of the tenant, in bursts
    of up to ``rate_burst`` (0: no rate limit). ``daily_write_quota``: memories the tenant
    may create per UTC day (0: unlimited). ``ask_*``: the most one ask may spend."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rate_per_s: float | None = Field(default=None, ge=0, le=MAX_RATE_PER_S)
    rate_burst: StrictInt | None = Field(default=None, ge=0, le=MAX_BURST)
    daily_write_quota: StrictInt | None = Field(default=None, ge=0, le=MAX_DAILY_WRITES)
    # Caps on one ask's budget (``AskBudget``): a request asking more gets a 422.
    ask_max_cycles: StrictInt | None = Field(default=None, ge=0, le=MAX_CYCLES)
    ask_max_llm_calls: StrictInt | None = Field(default=None, ge=0, le=MAX_LLM_CALLS)
    ask_max_tokens: StrictInt | None = Field(default=None, ge=0, le=MAX_TOKENS)
    ask_deadline_ms: StrictInt | None = Field(default=None, ge=1, le=MAX_DEADLINE_MS)


class EffectiveLimits(ReadModel):
    """The limits that apply: the tenant's overrides, else the server's defaults."""

    rate_per_s: float
    rate_burst: int
    daily_write_quota: int
    ask_max_cycles: int
    ask_max_llm_calls: int
    ask_max_tokens: int
    ask_deadline_ms: int


class TenantLimitsRead(ReadModel):
    tenant_id: uuid.UUID
    rate_per_s: float | None = None
    rate_burst: int | None = None
    daily_write_quota: int | None = None
    ask_max_cycles: int | None = None
    ask_max_llm_calls: int | None = None
    ask_max_tokens: int | None = None
    ask_deadline_ms: int | None = None
    effective: EffectiveLimits
    # Memories created this UTC day (counted while a daily quota applies).
    writes_today: int = 0
