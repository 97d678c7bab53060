"""Cubes: memory containers per user, agent or app."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from memsvc.schemas.common import JSONObject, Page, ReadModel, WireModel

# The write policies ``ingest`` can run (``memsvc.policy.policies``).
PolicyName = Literal["store_all", "learned", "llm"]


class CubeCreate(WireModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    metadata: JSONObject = Field(default_factory=dict)
    # The policy ``ingest`` uses when a request names none (None: ``learned``).
    write_policy: PolicyName | None = None


class CubeUpdate(WireModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    metadata: JSONObject | None = None
    # null: back to the service's default.
    write_policy: PolicyName | None = None


class CubeRead(ReadModel):
    id: uuid.UUID
    name: str
    description: str
    metadata: JSONObject
    memory_count: int = 0
    write_policy: PolicyName | None = None
    created_at: datetime
    updated_at: datetime


CubePage = Page[CubeRead]
