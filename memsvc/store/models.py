"""ORM tables. ORM objects never leave ``memsvc.store``; repositories return schemas."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, cast

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The embedding dimension is fixed by the initial migration (all-MiniLM-L6-v2: 384).
EMBEDDING_DIM = 384


# Set on a dialect whose connections dump numpy arrays as binary pgvector values
# (``memsvc.store.db.binary_vectors``); others get the text form.
BINARY_VECTORS = "memsvc_binary_vectors"


class FastVector(Vector):
    """pgvector's column type with cheaper parameter encoding: raw float32 bytes where the
    connection has the binary dumper (the service's engine), else 9 significant digits
    (round-trip a float32 exactly at half the cost of ``repr``). Vector encoding was the top
    Python cost of batch ingest."""

    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        if getattr(dialect, BINARY_VECTORS, False):

            def raw(value: Any) -> np.ndarray | None:
                return None if value is None else np.asarray(value, dtype=np.float32)

            return raw

        def process(value: Any) -> str | None:
            if value is None:
                return None
            floats = np.asarray(value, dtype=np.float32).tolist()
            return "[" + ",".join(["%.9g" % f for f in floats]) + "]"  # noqa: UP031 (faster)

        return process


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, list[str]: ARRAY(Text)}


def core_table(model: type[Base]) -> Table:
    """The Core table of a model, for bulk inserts without the ORM's per-row overhead."""
    return cast(Table, model.__table__)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _tenant_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)


class Tenant(Base):
    __tablename__ = "tenant"
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = _now()


class LLMUsage(Base):
    """LLM calls and tokens of one tenant in one clock hour (the LLM budget)."""

    __tablename__ = "llm_usage"
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ApiKey(Base):
    __tablename__ = "api_key"
    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    # operator (service-wide) | admin (its tenant's keys and data) | member (its tenant's data)
    role: Mapped[str] = mapped_column(String(20), default="member", server_default="member")
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (CheckConstraint("role IN ('operator', 'admin', 'member')", name="role"),)


class Cube(Base):
    __tablename__ = "cube"
    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Whether the cube's memories go into the HNSW index (large cubes only; see
    # ``memsvc.store.ann``). Set once by the promotion job, never cleared.
    ann_indexed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The write policy ``ingest`` uses when a request names none (NULL: ``learned``).
    write_policy: Mapped[str | None] = mapped_column(String(100))
    # Bumped by the database whenever the cube's searchable vectors change (migration
    # 0026's triggers): a search scores a kept copy only when it was loaded at this value
    # (``memsvc.store.vector_cache``). Never written by the service.
    vector_gen: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (
        Index(
            "uq_cube_tenant_name_live",
            "tenant_id",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )


def _hnsw_of_flagged(name: str) -> Index:
    """The partial HNSW index over the half-precision embeddings of rows flagged ``ann``
    (promoted cubes' memories and their passages; ``memsvc.store.ann``, migrations 0009 and
    0025)."""
    return Index(
        name,
        text(f"(embedding::halfvec({EMBEDDING_DIM})) halfvec_cosine_ops"),
        postgresql_using="hnsw",
        postgresql_with={"m": 8, "ef_construction": 64},
        postgresql_where=text("ann"),
    )


class Memory(Base):
    """Current state of a memory; its full history is in ``memory_version``."""

    __tablename__ = "memory"
    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cube.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(Text)
    # What the memory is indexed by: content plus what a reader needs to place it
    # (speaker, date, tags); the stored content is never changed for it.
    index_text: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(40), default="fact")
    layer: Mapped[str] = mapped_column(String(20), default="semantic")
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    context: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    user_id: Mapped[str | None] = mapped_column(String(200))
    agent_id: Mapped[str | None] = mapped_column(String(200))
    session_id: Mapped[str | None] = mapped_column(String(200))
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    status: Mapped[str] = mapped_column(String(20), default="active")
    enrichment_status: Mapped[str] = mapped_column(String(20), default="pending")
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Deferred: loading 384 floats per row is wasted on lists and results; the queries
    # that need them (kNN, note construction) ask for them.
    embedding: Mapped[Any] = mapped_column(FastVector(EMBEDDING_DIM), nullable=True, deferred=True)
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed("to_tsvector('english'::regconfig, coalesce(index_text, ''))", persisted=True),
        deferred=True,
    )
    # Distinct lexemes of ``tsv``: BM25's document length without reading the tsvector.
    tsv_len: Mapped[int] = mapped_column(
        Integer,
        Computed(
            "length(to_tsvector('english'::regconfig, coalesce(index_text, '')))", persisted=True
        ),
        deferred=True,
    )
    # In the HNSW index (only memories of ``Cube.ann_indexed`` cubes are).
    ann: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    idempotency_key: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (
        Index("ix_memory_cube_created", "cube_id", "created_at", "id"),
        Index(
            "ix_memory_tsv", "tsv", postgresql_using="gin", postgresql_with={"fastupdate": "off"}
        ),
        Index("ix_memory_tags", "tags", postgresql_using="gin"),
        Index(
            "ix_memory_cube_occurred",
            "cube_id",
            "occurred_at",
            postgresql_where=text("occurred_at IS NOT NULL"),
        ),
        _hnsw_of_flagged("ix_memory_embedding_ann"),
        Index("ix_memory_cube_unindexed", "cube_id", postgresql_where=text("NOT ann")),
        Index(
            "ix_memory_cube_session",
            "cube_id",
            "session_id",
            "created_at",
            postgresql_where=text("session_id IS NOT NULL"),
        ),
    )


class MemoryPassage(Base):
    """A later stretch of a long memory, embedded on its own: the embedder reads only the
    first ~256 word pieces of a text, so without these the rest of a long message would be
    invisible to the vector channel (scored by the best of the memory's own embedding and
    its passages, one result per memory). Derived, like the embedding: never content."""

    __tablename__ = "memory_passage"
    memory_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memory.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cube.id", ondelete="CASCADE"))
    embedding: Mapped[Any] = mapped_column(FastVector(EMBEDDING_DIM))
    # In the HNSW index: the passages of a promoted cube's flagged memories, flagged by the
    # ``ann_index`` job (``memsvc.store.ann``); the others are scored exactly. Set by the
    # database default on insert (inserts do not name it: older schemas lack the column).
    ann: Mapped[bool] = mapped_column(Boolean, server_default=false())
    __table_args__ = (
        Index("ix_memory_passage_cube", "cube_id"),
        _hnsw_of_flagged("ix_memory_passage_embedding_ann"),
        Index("ix_memory_passage_cube_unindexed", "cube_id", postgresql_where=text("NOT ann")),
    )


class MemorySummary(Base):
    """Which version of which member memory a summary version covers (``position``: its
    place in time order). Ids only: the text lives in the memories' versions."""

    __tablename__ = "memory_summary"
    summary_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memory.id", ondelete="CASCADE"), primary_key=True
    )
    summary_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memory.id", ondelete="CASCADE"), primary_key=True
    )
    member_version: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cube.id", ondelete="CASCADE"))
    __table_args__ = (Index("ix_memory_summary_member", "member_id"),)


class MemoryVersion(Base):
    """Append-only history: one row per change, never updated except by a privacy erase."""

    __tablename__ = "memory_version"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    memory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memory.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    change_kind: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(40))
    layer: Mapped[str] = mapped_column(String(20))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    context: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    user_id: Mapped[str | None] = mapped_column(String(200))
    agent_id: Mapped[str | None] = mapped_column(String(200))
    session_id: Mapped[str | None] = mapped_column(String(200))
    importance: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20))
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    embedding_model: Mapped[str | None] = mapped_column(String(300))
    embedding_hash: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(Text)
    caused_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    policy: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(300))
    # An edit applied on top of system versions written after the one it expected.
    rebased_over: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    # Written by an import: the system, cube, memory and version this one was copied from.
    imported_from: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()
    __table_args__ = (UniqueConstraint("memory_id", "version"),)


class Source(Base):
    """A raw input (message, document, event): the veridical layer."""

    __tablename__ = "source"
    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cube.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40), default="message")
    external_id: Mapped[str | None] = mapped_column(String(500))
    speaker: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    text: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    created_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_source_cube_external", "cube_id", "external_id"),)


class MemorySource(Base):
    """Which version of a memory came from which sources."""

    __tablename__ = "memory_source"
    memory_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memory.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("source.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()


class Link(Base):
    """A typed, weighted edge of the Zettelkasten graph, with its provenance."""

    __tablename__ = "link"
    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cube.id", ondelete="CASCADE"))
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memory.id", ondelete="CASCADE"), index=True
    )
    target_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memory.id", ondelete="CASCADE"), index=True
    )
    relation: Mapped[str] = mapped_column(String(40))
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="active")
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = _now()
    __table_args__ = (
        Index(
            "uq_link_live_edge",
            "source_id",
            "target_id",
            "relation",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_link_cube_live", "cube_id", postgresql_where=text("status = 'active'")),
    )


class Job(Base):
    """Durable background work, taken with ``FOR UPDATE SKIP LOCKED``."""

    __tablename__ = "job"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # queued | running | done | failed (failed = parked dead letter)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = _now()
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (
        Index("ix_job_ready", "status", "run_after", postgresql_where=text("status = 'queued'")),
        Index("ix_job_tenant_status", "tenant_id", "status"),
    )


class IdempotencyRecord(Base):
    """A replayable answer for a request made with an ``Idempotency-Key`` header."""

    __tablename__ = "idempotency_record"
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()


class AuditLog(Base):
    """Operator-visible record of sensitive actions (hard erase, key changes)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(60))
    target_id: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = _now()


class TenantLimit(Base):
    """A tenant's overrides of the server's limits (NULL: the server's default)."""

    __tablename__ = "tenant_limit"
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    rate_per_s: Mapped[float | None] = mapped_column(Float)
    rate_burst: Mapped[int | None] = mapped_column(Integer)
    daily_write_quota: Mapped[int | None] = mapped_column(BigInteger)
    # Caps on what one ``ask`` may spend (``AskBudget``); NULL: the server's.
    ask_max_cycles: Mapped[int | None] = mapped_column(Integer)
    ask_max_llm_calls: Mapped[int | None] = mapped_column(Integer)
    ask_max_tokens: Mapped[int | None] = mapped_column(Integer)
    ask_deadline_ms: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = _now()


class RetrievalTrace(Base):
    """What one ``ask`` did, step by step, kept until ``expires_at``. ``memory_ids`` names
    every memory the trace mentions (a hard erase of one deletes the trace)."""

    __tablename__ = "retrieval_trace"
    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cube.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(20))
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    steps: Mapped[list[Any]] = mapped_column(JSONB)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    memory_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    llm_calls: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer)
    took_ms: Mapped[float] = mapped_column(Float)
    stopped: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    __table_args__ = (
        Index("ix_retrieval_trace_cube_created", "cube_id", "created_at"),
        Index("ix_retrieval_trace_memory_ids", "memory_ids", postgresql_using="gin"),
    )


class TenantWriteUsage(Base):
    """Memories created by a tenant on one UTC day (for the daily write quota)."""

    __tablename__ = "tenant_write_usage"
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    writes: Mapped[int] = mapped_column(BigInteger, server_default="0")


class RevokedSession(Base):
    """A signed-out admin session (sha256 of its id) until its cookie expires."""

    __tablename__ = "revoked_session"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class WriteDecision(Base):
    """What a write policy decided for one ingested message (``memsvc.policy.ingest``), and
    the memory version it produced; ``reward`` is filled in by training."""

    __tablename__ = "write_decision"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cube.id", ondelete="CASCADE"))
    ingest_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    message_index: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("source.id", ondelete="CASCADE"), index=True
    )
    policy: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[int] = mapped_column(Integer)
    operation: Mapped[str] = mapped_column(String(10))
    layer: Mapped[str | None] = mapped_column(String(20))
    memory_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    memory_version: Mapped[int | None] = mapped_column(Integer)
    target_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    score: Mapped[float | None] = mapped_column(Float)
    features: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    reward: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _now()
    __table_args__ = (
        CheckConstraint(
            "operation IN ('insert', 'update', 'merge', 'delete', 'skip')", name="operation"
        ),
        Index("ix_write_decision_cube_id", "cube_id", "id"),
        Index("ix_write_decision_memory", "memory_id", "memory_version"),
    )


class WritePolicyVersion(Base):
    """A trained version of a write policy, as data (JSON: loading it executes nothing),
    with its metrics; at most one version per (tenant, name) is active."""

    __tablename__ = "write_policy"
    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    model: Mapped[dict[str, Any]] = mapped_column(JSONB)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    training: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_by: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = _now()
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "version", name="uq_write_policy_version"),
        Index(
            "uq_write_policy_active",
            "tenant_id",
            "name",
            unique=True,
            postgresql_where=text("active"),
        ),
    )


class Feedback(Base):
    """A reward signal an agent reported on a memory (``used``, ``wrong``...)."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cube.id", ondelete="CASCADE"))
    memory_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memory.id", ondelete="CASCADE"), index=True
    )
    trace_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    signal: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = _now()
