"""Links of the Zettelkasten graph and the graph views built from them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, get_args

from pydantic import Field

from memsvc.schemas.common import Page, ReadModel, WireModel

Relation = Literal[
    "related",
    "elaborates",
    "supports",
    "contradicts",
    "supersedes",
    "same_entity",
    "causes",
    "part_of",
    "follows",
]
RELATIONS: tuple[str, ...] = get_args(Relation)
# Relations that read the same in both directions: one live edge per pair, whichever way.
SYMMETRIC_RELATIONS = frozenset({"related", "same_entity", "contradicts"})


class LinkCreate(WireModel):
    """A manual edge: ``source <relation> target`` (e.g. source elaborates target)."""

    source_id: uuid.UUID
    target_id: uuid.UUID
    relation: Relation
    weight: float = Field(default=1.0, ge=0.0, le=1.0)
    reason: str | None = Field(default=None, max_length=2000)


class LinkRead(ReadModel):
    """The link JSON."""

    id: uuid.UUID
    source_id: uuid.UUID
    target_id: uuid.UUID
    relation: str
    weight: float
    reason: str | None = None
    created_by: str
    created_at: datetime


LinkPage = Page[LinkRead]


class GraphNode(ReadModel):
    """A memory as drawn: label, importance (PageRank), degree and community."""

    id: uuid.UUID
    label: str
    kind: str
    layer: str
    tags: list[str] = Field(default_factory=list)
    importance: float
    degree: int
    community: int | None = None
    created_at: datetime


class GraphEdge(LinkRead):
    """An edge of a graph view: the link JSON."""


class GraphRead(ReadModel):
    """Nodes and edges of a cube's graph (around ``center`` when given)."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]
    center: uuid.UUID | None = None
    # True when ``limit`` cut nodes that the walk would otherwise have included.
    truncated: bool = False


class GraphPath(ReadModel):
    """The shortest path between two memories along live links (either direction)."""

    source_id: uuid.UUID
    target_id: uuid.UUID
    found: bool
    memory_ids: list[uuid.UUID] = Field(default_factory=list)
    edges: list[GraphEdge] = Field(default_factory=list)
    length: int | None = None
