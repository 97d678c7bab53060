"""Keyword-argument shapes of the SDK methods, mirroring the schema classes field by field."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypedDict

from memsvc.schemas import RetrievalConfig, SearchFilters, SourceCreate
from memsvc.schemas.cubes import PolicyName
from memsvc.schemas.memories import Layer, Status

ID = uuid.UUID | str
"""A resource id: a UUID or its string form."""


class CubeFields(TypedDict, total=False):
    """Fields of ``CubeCreate``."""

    name: str
    description: str
    metadata: Mapping[str, object]
    write_policy: PolicyName | None


class CubeUpdateFields(TypedDict, total=False):
    """Fields of ``CubeUpdate``; only the keys passed are sent."""

    name: str | None
    description: str | None
    metadata: Mapping[str, object] | None
    write_policy: PolicyName | None


class MemoryFields(TypedDict, total=False):
    """Fields of ``MemoryCreate``."""

    content: str
    kind: str
    layer: Layer
    tags: Sequence[str]
    metadata: Mapping[str, object]
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    importance: float
    valid_from: datetime | None
    valid_to: datetime | None
    sources: Sequence[SourceCreate]


class MemoryUpdateFields(TypedDict, total=False):
    """Fields of ``MemoryUpdate``; only the keys passed are sent (``None`` clears a field)."""

    expected_version: int
    content: str | None
    kind: str | None
    layer: Layer | None
    tags: Sequence[str] | None
    metadata: Mapping[str, object] | None
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    importance: float | None
    valid_from: datetime | None
    valid_to: datetime | None
    reason: str | None


class MemoryFilters(TypedDict, total=False):
    """Query filters of ``GET /v1/cubes/{cube_id}/memories``; ``tag`` may repeat. The names
    are the fields of the server's ``memsvc.schemas.MemoryFilters`` (a test holds them)."""

    status: Status
    kind: str
    layer: Layer
    tag: str | Sequence[str]
    user_id: str
    agent_id: str
    session_id: str
    created_after: datetime
    created_before: datetime
    include_deleted: bool
    include_summaries: bool


class SearchFields(TypedDict, total=False):
    """Fields of ``SearchRequest``."""

    query: str
    top_k: int
    filters: SearchFilters | None
    preset: str | None
    config: RetrievalConfig | None
    as_of: datetime | None
    now: datetime | None
    explain: bool
