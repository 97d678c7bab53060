"""Tenants and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from memsvc.schemas.common import Page, ReadModel, WireModel


class TenantCreate(WireModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class TenantRead(ReadModel):
    id: uuid.UUID
    name: str


class KeyCreate(WireModel):
    tenant_id: uuid.UUID | None = None  # default: the caller's tenant
    name: str = Field(default="key", min_length=1, max_length=200)
    admin: bool = False


class KeyCreated(ReadModel):
    """Returned once at creation: ``key`` is the secret and is never shown again."""

    id: uuid.UUID
    key: str
    tenant_id: uuid.UUID
    name: str
    admin: bool


class KeyRead(ReadModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    admin: bool
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


KeyPage = Page[KeyRead]
