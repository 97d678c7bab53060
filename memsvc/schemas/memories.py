"""Memories (MemCube records), their sources, versions and provenance."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    model_validator,
)

from memsvc.schemas.common import INT32_MAX, JSONObject, Page, ReadModel, Timestamp, WireModel
from memsvc.schemas.decisions import DecisionRead

Layer = Literal["core", "semantic", "episodic"]
Status = Literal["active", "deleted"]
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
MAX_TAG_CHARS = 100
MAX_TAGS = 64
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_CHARS)]
# Fields a PATCH may leave out but not set to null (the others' null clears them).
NOT_NULL = ("content", "kind", "layer", "tags", "metadata", "importance")


# Read models are built from store rows (``model_validate(row)``): rows keep ``metadata`` as
# ``metadata_`` (SQLAlchemy's name), JSON says ``metadata``; a NULL list reads as empty.
RowMetadata = Annotated[JSONObject, Field(validation_alias=AliasChoices("metadata_", "metadata"))]
RowInts = Annotated[list[int], BeforeValidator(lambda v: [] if v is None else v)]


def check_memory(content: str, valid_from: datetime | None, valid_to: datetime | None) -> None:
    """What every memory must satisfy, on create and on the merged result of an edit."""
    if not content.strip():
        raise ValueError("content must not be blank")
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise ValueError("valid_to is before valid_from")


class SourceCreate(WireModel):
    """A raw input a memory came from (message, document, event): the veridical layer."""

    kind: str = Field(default="message", pattern=KIND_PATTERN)
    external_id: str | None = Field(default=None, max_length=500)
    speaker: str | None = Field(default=None, max_length=200)
    occurred_at: Timestamp | None = None
    text: str | None = None
    metadata: JSONObject = Field(default_factory=dict)


class SourceRead(ReadModel):
    id: uuid.UUID
    kind: str
    external_id: str | None = None
    speaker: str | None = None
    occurred_at: datetime | None = None
    text: str | None = None
    metadata: RowMetadata = Field(default_factory=dict)


class MemoryCreate(WireModel):
    content: str = Field(min_length=1)
    kind: str = Field(default="fact", pattern=KIND_PATTERN)
    layer: Layer = "semantic"
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: JSONObject = Field(default_factory=dict)
    user_id: str | None = Field(default=None, max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None
    sources: list[SourceCreate] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _validity(self) -> MemoryCreate:
        check_memory(self.content, self.valid_from, self.valid_to)
        return self


class MemoryBatchCreate(WireModel):
    memories: list[MemoryCreate] = Field(min_length=1)
    # False: stored, versioned and searchable at once, but not enriched (no keywords,
    # context or links of their own; ``enrichment_status`` "skipped"), e.g. for a bulk
    # import whose background enrichment is not wanted. Later memories may still link to them.
    enrich: bool = True


class MemoryUpdate(WireModel):
    """A change to a memory, made against ``expected_version`` (see ``memsvc.store.edits``)."""

    expected_version: int = Field(ge=1, le=INT32_MAX)
    content: str | None = Field(default=None, min_length=1)
    kind: str | None = Field(default=None, pattern=KIND_PATTERN)
    layer: Layer | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    metadata: JSONObject | None = None
    user_id: str | None = Field(default=None, max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    importance: float | None = Field(default=None, ge=0.0, le=1.0)
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None
    reason: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _no_null(self) -> MemoryUpdate:
        nulled = [f for f in NOT_NULL if f in self.model_fields_set and getattr(self, f) is None]
        if nulled:
            raise ValueError(f"{', '.join(nulled)} may be left out but not set to null")
        if self.content is not None and not self.content.strip():
            raise ValueError("content must not be blank")
        return self


class MemoryRead(ReadModel):
    id: uuid.UUID
    cube_id: uuid.UUID
    content: str
    kind: str
    layer: Layer
    tags: list[str]
    metadata: RowMetadata
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    importance: float
    status: Status
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    created_at: datetime
    updated_at: datetime
    version: int
    keywords: list[str] = Field(default_factory=list)
    context: str | None = None
    enrichment_status: str = "pending"
    sources: list[SourceRead] = Field(default_factory=list)


class MemoryFilters(BaseModel):
    """Filters of a memory list, ``None`` meaning no restriction: the query of
    ``GET /v1/cubes/{cube_id}/memories`` (FastAPI's query model, ``tag`` may repeat), the
    admin table's filters and what ``store.filters.apply_filters`` reads. ``status`` wins
    over ``include_deleted`` (deleted ones too); erased memories are never listed.
    Summaries (``kind`` "summary", written by the service) are listed only when asked for:
    ``include_summaries`` true, or ``kind`` "summary" (summaries only).
    The SDK's ``MemoryFilters`` keyword arguments carry the same names (a test holds them)."""

    status: Status | None = None
    kind: str | None = None
    layer: Layer | None = None
    tag: list[str] | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    created_after: Timestamp | None = None
    created_before: Timestamp | None = None
    include_deleted: bool = False
    include_summaries: bool = False


class MemoryListQuery(MemoryFilters):
    """The whole query of a memory list: its filters and a page (``next_cursor`` on)."""

    cursor: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class MemoryList(ReadModel):
    """``{"items": [...]}`` answer of a create."""

    items: list[MemoryRead]


MemoryPage = Page[MemoryRead]

ChangeKind = Literal["create", "update", "delete", "restore", "enrich", "evolve", "erase"]


class MemoryVersionRead(ReadModel):
    memory_id: uuid.UUID
    version: int
    change_kind: str
    content: str
    kind: str
    layer: str
    tags: list[str]
    metadata: RowMetadata
    keywords: list[str] = Field(default_factory=list)
    context: str | None = None
    importance: float
    status: str
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    actor: str
    reason: str | None = None
    caused_by: uuid.UUID | None = None
    policy: str | None = None
    model: str | None = None
    embedding_model: str | None = None
    embedding_hash: str | None = None
    # Versions (by the system) written after the edit's expected_version, applied under it.
    rebased_over: RowInts = Field(default_factory=list)
    # Set on versions written by an import: where the version came from (system, cube,
    # memory id and version number there); its other provenance fields are the original's.
    imported_from: JSONObject | None = None
    created_at: datetime


MemoryVersionPage = Page[MemoryVersionRead]


SUMMARY_KIND = "summary"


class SummaryMember(ReadModel):
    """A memory (at one version) that a summary version covers."""

    memory_id: uuid.UUID
    version: int


class VersionProvenance(ReadModel):
    version: int
    change_kind: str
    actor: str
    reason: str | None = None
    caused_by: uuid.UUID | None = None
    policy: str | None = None
    model: str | None = None
    rebased_over: RowInts = Field(default_factory=list)
    imported_from: JSONObject | None = None
    created_at: datetime
    sources: list[SourceRead] = Field(default_factory=list)
    # On a summary's versions: exactly the memories (and versions) it summarises, in time
    # order; empty on every other memory.
    summarises: list[SummaryMember] = Field(default_factory=list)
    # On versions a write policy produced (``ingest``): the decisions behind it, one per
    # message it came from.
    decisions: list[DecisionRead] = Field(default_factory=list)


class ProvenanceRead(ReadModel):
    memory_id: uuid.UUID
    versions: list[VersionProvenance]
