"""A write policy's decision on one ingested message (``POST /v1/cubes/{id}/ingest``), as
listed, returned by ingest and named in the provenance of the versions it produced."""

from __future__ import annotations

import uuid
from typing import Literal

from memsvc.schemas.common import ReadModel

Operation = Literal["insert", "update", "merge", "delete", "skip"]
DecidedLayer = Literal["core", "semantic", "episodic"]


class DecisionRead(ReadModel):
    id: int | None = None
    message_index: int
    operation: Operation
    layer: DecidedLayer | None = None
    # The memory the message went into (insert, update, merge) and the version it produced.
    memory_id: uuid.UUID | None = None
    memory_version: int | None = None
    # The existing memory an update, merge or delete acted on.
    target_id: uuid.UUID | None = None
    source_id: uuid.UUID
    reason: str = ""
    score: float | None = None
    policy: str
    policy_version: int
