"""Search requests and results. Retrieval strategies are data: a preset name or a config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from memsvc.schemas.common import INT32_MAX, ReadModel, Timestamp, WireModel
from memsvc.schemas.memories import MAX_TAGS, Layer, MemoryRead, Tag


class SearchFilters(WireModel):
    """What a search may return. Summaries (``kind`` "summary": episodic window and
    semantic cluster summaries the service writes) are left out unless asked for:
    ``include_summaries`` true adds them to everything else, ``kinds`` naming "summary"
    asks for them by kind (with ``kinds: ["summary"]``, summaries only)."""

    kinds: list[str] | None = Field(default=None, max_length=100)
    layers: list[Layer] | None = None
    tags: list[Tag] | None = Field(
        default=None, max_length=MAX_TAGS, description="any of these tags"
    )
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    created_after: Timestamp | None = None
    created_before: Timestamp | None = None
    include_deleted: bool = False
    include_summaries: bool = False


class ChannelConfig(WireModel):
    weight: float = Field(default=1.0, ge=0.0)
    depth: int = Field(default=50, ge=1, le=2000)


class RetrievalConfig(WireModel):
    """A full retrieval strategy; presets are named instances of it."""

    vector: ChannelConfig | None = Field(default_factory=ChannelConfig)
    fulltext: ChannelConfig | None = Field(default_factory=ChannelConfig)
    time: ChannelConfig | None = None
    graph: ChannelConfig | None = None
    # Long memories' passage vectors as a channel of their own (each memory by its best
    # passage). Without it the vector channel ranks a memory by its best vector, its own
    # or one of its passages'.
    passages: ChannelConfig | None = None
    # Full-text scorer: BM25 (exact, cubes below the exact-search threshold; larger cubes
    # fall back to ts_rank_cd) or Postgres ts_rank_cd.
    lexical_scorer: Literal["bm25", "ts_rank"] = "bm25"
    rrf_k: int = Field(default=60, ge=1, le=INT32_MAX)
    # Added to the fused score: weight * 0.5 ** (age / half-life) and weight * importance.
    recency_weight: float = Field(default=0.0, ge=0.0)
    recency_half_life_days: float = Field(default=30.0, gt=0.0)
    importance_weight: float = Field(default=0.0, ge=0.0)
    rerank: bool = False
    rerank_depth: int = Field(default=50, ge=1, le=500)
    # How candidates are ordered: weighted reciprocal-rank fusion with the weights above, or
    # the learned ranker over per-candidate features (``memsvc.retrieval.ranker``; the
    # channels still find the candidates).
    ranker: Literal["rrf", "learned"] = "rrf"


class SearchRequest(WireModel):
    query: str = Field(min_length=1, max_length=8000)
    top_k: int = Field(default=10, ge=1, le=INT32_MAX)
    filters: SearchFilters | None = None
    preset: str | None = None
    config: RetrievalConfig | None = None
    as_of: Timestamp | None = None
    # The asker's current time (default: the service's clock, or ``as_of`` when given).
    # Relative phrases ("last Saturday", "two weeks ago") are read against it, recency is
    # measured from it, and memories no longer valid at it rank below those that are.
    # Unlike ``as_of`` it filters nothing out.
    now: Timestamp | None = None
    explain: bool = False


class ChannelHit(ReadModel):
    rank: int
    score: float


class SearchResult(ReadModel):
    memory: MemoryRead
    score: float
    explain: dict[str, ChannelHit] | None = None


class SearchResponse(ReadModel):
    results: list[SearchResult]
    preset: str | None = None
    # Whether a cross-encoder reordered the head; false when one was asked for but none is
    # configured (the results are then the fused order: ``deep`` degrades to ``hybrid``).
    reranked: bool = False
    exact: bool = Field(default=False, description="vector scores were exhaustive")
    notes: list[str] = Field(default_factory=list)
    took_ms: float = 0.0
