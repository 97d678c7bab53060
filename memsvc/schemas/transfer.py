"""The cube export format: JSON lines (``application/x-ndjson``), one record per line.

A file is a ``header``, every ``source`` of the cube, every ``memory`` (current state plus
its whole version history, each version naming its sources), every ``link`` and an ``end``
record with the counts. Records refer to each other by the ids of the exporting cube;
an import maps each id to a new one derived from the target cube (``uuid5``), so a
re-sent line lands on the same row (imports are idempotent) and a record can only ever
point into its own target cube. Import accepts the records in any number of requests, as
long as a record's sources and memories come in the same or an earlier request.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from memsvc.schemas.common import INT32_MAX, JSONObject, ReadModel, Timestamp, WireModel
from memsvc.schemas.memories import KIND_PATTERN, MAX_TAGS, Layer, Status, Tag

FORMAT: Literal["memsvc.cube"] = "memsvc.cube"
FORMAT_VERSION: Literal[1] = 1
MEDIA_TYPE = "application/x-ndjson"

# An exported id: the exporting service's UUIDs, or another system's ids (mem0's).
RecordId = Annotated[str, Field(min_length=1, max_length=200)]
Version = Annotated[int, Field(ge=1, le=INT32_MAX)]


class CubeInfo(WireModel):
    id: RecordId
    name: str = Field(max_length=200)
    description: str = ""
    metadata: JSONObject = Field(default_factory=dict)


class HeaderRecord(WireModel):
    """The first line: what was exported, from where, when."""

    type: Literal["header"] = "header"
    format: Literal["memsvc.cube"] = FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    cube: CubeInfo
    exported_at: Timestamp


class SourceRecord(WireModel):
    """A raw input (message, document, event)."""

    type: Literal["source"] = "source"
    id: RecordId
    kind: str = Field(default="message", pattern=KIND_PATTERN)
    external_id: str | None = Field(default=None, max_length=500)
    speaker: str | None = Field(default=None, max_length=200)
    occurred_at: Timestamp | None = None
    text: str | None = None
    metadata: JSONObject = Field(default_factory=dict)
    created_at: Timestamp


class VersionRecord(WireModel):
    """One version of a memory, with its provenance."""

    version: Version
    change_kind: str = Field(min_length=1, max_length=20)
    content: str
    kind: str = Field(pattern=KIND_PATTERN)
    layer: Layer
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    keywords: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=200
    )
    context: str | None = None
    metadata: JSONObject = Field(default_factory=dict)
    user_id: str | None = Field(default=None, max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    importance: float = Field(ge=0.0, le=1.0)
    status: Status
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None
    embedding_model: str | None = Field(default=None, max_length=300)
    embedding_hash: str | None = Field(default=None, max_length=64)
    actor: str = Field(min_length=1, max_length=300)
    reason: str | None = None
    caused_by: RecordId | None = None
    policy: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=300)
    rebased_over: list[Version] = Field(default_factory=list, max_length=1000)
    imported_from: JSONObject | None = None
    created_at: Timestamp
    sources: list[RecordId] = Field(default_factory=list, max_length=100)


class MemoryRecord(WireModel):
    """A memory: its current state and every version, oldest first."""

    type: Literal["memory"] = "memory"
    id: RecordId
    # Where it was exported from: ``memsvc`` (with the cube's id) or another system.
    origin: str = Field(default="memsvc", max_length=40)
    cube_id: RecordId | None = None
    content: str = Field(min_length=1)
    index_text: str | None = None
    kind: str = Field(default="fact", pattern=KIND_PATTERN)
    layer: Layer = "semantic"
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    keywords: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=200
    )
    context: str | None = None
    metadata: JSONObject = Field(default_factory=dict)
    user_id: str | None = Field(default=None, max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    status: Status = "active"
    enrichment_status: Literal["pending", "done", "skipped", "failed"] = "skipped"
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None
    occurred_at: Timestamp | None = None
    version: Version
    created_at: Timestamp
    updated_at: Timestamp
    # float32 little-endian, base64; re-embedded on import when absent or of another model.
    embedding: str | None = Field(default=None, max_length=4096)
    embedding_model: str | None = Field(default=None, max_length=300)
    versions: list[VersionRecord] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _history(self) -> MemoryRecord:
        numbers = [v.version for v in self.versions]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError("versions must be numbered 1, 2, ... in order")
        if self.version != numbers[-1]:
            raise ValueError("version must be the number of the last version")
        return self


class LinkRecord(WireModel):
    """A graph edge between two memories of the cube, with its provenance."""

    type: Literal["link"] = "link"
    id: RecordId
    source_id: RecordId
    target_id: RecordId
    relation: str = Field(min_length=1, max_length=40)
    weight: float = 1.0
    reason: str | None = None
    created_by: str = Field(min_length=1, max_length=300)
    status: str = Field(default="active", max_length=20)
    provenance: JSONObject = Field(default_factory=dict)
    created_at: Timestamp


class EndRecord(WireModel):
    """The last line: how many records of each type came before it."""

    type: Literal["end"] = "end"
    counts: dict[str, Annotated[int, Field(ge=0)]]


Record = Annotated[
    HeaderRecord | SourceRecord | MemoryRecord | LinkRecord | EndRecord,
    Field(discriminator="type"),
]


class TransferCounts(ReadModel):
    sources: int = 0
    memories: int = 0
    versions: int = 0
    links: int = 0


class ImportResult(ReadModel):
    """What one import request wrote; ``skipped``: records already there (a re-sent line)."""

    lines: int
    created: TransferCounts
    skipped: TransferCounts
    id_map_namespace: uuid.UUID = Field(
        description="new id = uuid5(this, exported id): the target cube's id"
    )
    finished_at: datetime
