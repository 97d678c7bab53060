"""What enrichment reads and writes on memory rows: notes, neighbour candidates, revisions.

Every change goes through :func:`revise`, which appends a version (``enrich``/``evolve``)
exactly like the write path does, so history and provenance stay complete.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Date, cast, func, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from memsvc.schemas.memories import SUMMARY_KIND
from memsvc.store import ann, memories, textsearch, versions
from memsvc.store.models import Memory, MemorySource, MemoryVersion, Source

# Fields enrichment and evolution may change; content never changes here.
REVISABLE = frozenset({"keywords", "tags", "context", "valid_to"})


@dataclass
class Note:
    """A memory as enrichment sees it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    cube_id: uuid.UUID
    content: str
    kind: str
    status: str
    enrichment_status: str
    tags: list[str]
    keywords: list[str]
    context: str | None
    session_id: str | None
    created_at: datetime
    occurred_at: datetime | None
    valid_from: datetime | None
    valid_to: datetime | None
    embedding: np.ndarray | None
    speakers: list[str] = field(default_factory=list)
    has_enrich_version: bool = False


@dataclass
class Candidate:
    """A possible neighbour of a note, with its cosine similarity to it."""

    id: uuid.UUID
    content: str
    context: str | None
    tags: list[str]
    keywords: list[str]
    session_id: str | None
    created_at: datetime
    occurred_at: datetime | None
    valid_to: datetime | None
    similarity: float
    channels: list[str] = field(default_factory=list)


def _note(mem: Memory, speakers: list[str], has_enrich: bool) -> Note:
    emb = None if mem.embedding is None else np.asarray(mem.embedding, dtype=np.float32)
    return Note(
        id=mem.id,
        tenant_id=mem.tenant_id,
        cube_id=mem.cube_id,
        content=mem.content,
        kind=mem.kind,
        status=mem.status,
        enrichment_status=mem.enrichment_status,
        tags=list(mem.tags or []),
        keywords=list(mem.keywords or []),
        context=mem.context,
        session_id=mem.session_id,
        created_at=mem.created_at,
        occurred_at=mem.occurred_at,
        valid_from=mem.valid_from,
        valid_to=mem.valid_to,
        embedding=emb,
        speakers=speakers,
        has_enrich_version=has_enrich,
    )


async def has_version(
    session: AsyncSession,
    *,
    memory_id: uuid.UUID,
    change_kind: str,
    caused_by: uuid.UUID | None = None,
) -> bool:
    """Whether the memory already has a version of this kind (caused by this memory)."""
    stmt = select(MemoryVersion.id).where(
        MemoryVersion.memory_id == memory_id, MemoryVersion.change_kind == change_kind
    )
    if caused_by is not None:
        stmt = stmt.where(MemoryVersion.caused_by == caused_by)
    return (await session.execute(stmt.limit(1))).first() is not None


async def load_note(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID, for_update: bool = False
) -> Note | None:
    """The note of a memory, or None when it is gone (absent or erased)."""
    stmt = (
        select(Memory)
        .options(undefer(Memory.embedding))
        .where(Memory.id == memory_id, Memory.tenant_id == tenant_id, Memory.status != "erased")
    )
    if for_update:
        stmt = stmt.with_for_update()
    mem = (await session.execute(stmt)).scalar_one_or_none()
    if mem is None:
        return None
    speakers = (
        await session.execute(
            select(Source.speaker)
            .join(MemorySource, MemorySource.source_id == Source.id)
            .where(MemorySource.memory_id == memory_id, Source.speaker.is_not(None))
            .distinct()
        )
    ).scalars()
    enriched = await has_version(session, memory_id=memory_id, change_kind="enrich")
    return _note(mem, sorted(s for s in speakers if s), enriched)


@dataclass
class Locked:
    """A memory row locked for the rest of the transaction."""

    status: str
    enrichment_status: str
    tags: list[str]


async def lock(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID
) -> Locked | None:
    """Lock the memory row for this transaction (None when it does not exist)."""
    row = (
        await session.execute(
            select(Memory.status, Memory.enrichment_status, Memory.tags)
            .where(Memory.id == memory_id, Memory.tenant_id == tenant_id)
            .with_for_update()
        )
    ).first()
    return None if row is None else Locked(row[0], row[1], list(row[2] or []))


def _tsquery(terms: Sequence[str]) -> str | None:
    words: list[str] = []
    for t in terms:
        words.extend(w for w in "".join(c if c.isalnum() else " " for c in t).lower().split())
    uniq = list(dict.fromkeys(w for w in words if len(w) > 1))
    return " | ".join(uniq[:32]) if uniq else None


async def session_speakers(session: AsyncSession, *, note: Note) -> list[str]:
    """Speakers of the sources of the note's session (its own speakers without one)."""
    if note.session_id is None:
        return list(note.speakers)
    rows = await session.execute(
        select(Source.speaker)
        .join(MemorySource, MemorySource.source_id == Source.id)
        .join(Memory, Memory.id == MemorySource.memory_id)
        .where(
            Memory.tenant_id == note.tenant_id,
            Memory.cube_id == note.cube_id,
            Memory.session_id == note.session_id,
            Source.speaker.is_not(None),
        )
        .distinct()
        .limit(50)
    )
    return sorted({*note.speakers, *(r for r in rows.scalars() if r)})


def _phrase(term: str) -> Any:
    return func.phraseto_tsquery("english", term)


async def term_counts(
    session: AsyncSession, *, note: Note, terms: Sequence[str]
) -> tuple[int, dict[str, int]]:
    """Active memories of the note's cube, and how many of them hold each term (a phrase)."""
    scope = (
        Memory.tenant_id == note.tenant_id,
        Memory.cube_id == note.cube_id,
        Memory.status == "active",
        Memory.kind != SUMMARY_KIND,
    )
    n = int((await session.execute(select(func.count()).where(*scope))).scalar_one())
    terms = list(dict.fromkeys(t for t in terms if _tsquery([t])))
    if not terms:
        return n, {}
    any_of = func.to_tsquery("english", " | ".join(f"({_phrase_text(t)})" for t in terms))
    counts = [
        func.count().filter(textsearch.plain_match(_phrase(t))).label(f"t{i}")
        for i, t in enumerate(terms)
    ]
    row = (
        await session.execute(
            select(*counts).where(
                *scope, textsearch.cube_match(note.tenant_id, note.cube_id)(any_of)
            )
        )
    ).one()
    return n, {t: int(row[i]) for i, t in enumerate(terms)}


def _phrase_text(term: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in term).lower().split()
    return " <-> ".join(words)


async def mentions(
    session: AsyncSession, *, note: Note, name: str, recent: int
) -> tuple[uuid.UUID | None, list[uuid.UUID]]:
    """The first active memory of the cube mentioning ``name`` (its anchor) and the
    ``recent`` mentions just before the note, other than the note itself."""
    scope = (
        Memory.tenant_id == note.tenant_id,
        Memory.cube_id == note.cube_id,
        Memory.status == "active",
        Memory.kind != SUMMARY_KIND,
        Memory.id != note.id,
        textsearch.cube_match(note.tenant_id, note.cube_id)(_phrase(name)),
    )
    first = (
        await session.execute(
            select(Memory.id).where(*scope).order_by(Memory.created_at, Memory.id).limit(1)
        )
    ).scalar_one_or_none()
    before = (
        await session.execute(
            select(Memory.id)
            .where(*scope, tuple_(Memory.created_at, Memory.id) < tuple_(note.created_at, note.id))
            .order_by(Memory.created_at.desc(), Memory.id.desc())
            .limit(recent)
        )
    ).scalars()
    return first, list(before)


async def candidates(
    session: AsyncSession,
    *,
    note: Note,
    terms: Sequence[str],
    k: int,
    also: Sequence[uuid.UUID] = (),
) -> list[Candidate]:
    """Up to ``k`` nearest active memories by vector plus ``k`` by full text, best first,
    and the memories ``also`` asked for (channel ``subject``)."""
    scope = (
        Memory.tenant_id == note.tenant_id,
        Memory.cube_id == note.cube_id,
        Memory.status == "active",
        Memory.kind != SUMMARY_KIND,  # summaries are not notes: never linked nor evolved
        Memory.id != note.id,
    )
    vector_ids: set[uuid.UUID] = set()
    if note.embedding is not None:
        approximate = await ann.is_indexed(session, note.cube_id)
        near, _, _ = await ann.nearest(
            session, select(Memory.id).where(*scope), note.embedding, k, approximate=approximate
        )
        vector_ids = {mid for mid, _ in near}
    q = _tsquery(terms)
    text_ids: set[uuid.UUID] = set()
    if q is not None:
        tsq = func.to_tsquery("english", q)
        fts = (
            select(Memory.id)
            .where(*scope, textsearch.cube_match(note.tenant_id, note.cube_id)(tsq))
            .order_by(func.ts_rank_cd(Memory.tsv, tsq, 32).desc(), Memory.id)
            .limit(k)
        )
        text_ids = set((await session.execute(fts)).scalars())
    subject_ids = set(also) - {note.id}
    ids = vector_ids | text_ids | subject_ids
    if not ids:
        return []
    sim: Any = (
        (1 - Memory.embedding.cosine_distance(note.embedding))
        if note.embedding is not None
        else literal(0.0)
    )
    rows = await session.execute(
        select(
            Memory.id,
            Memory.content,
            Memory.context,
            Memory.tags,
            Memory.keywords,
            Memory.session_id,
            Memory.created_at,
            Memory.occurred_at,
            Memory.valid_to,
            sim.label("sim"),
        )
        .where(Memory.id.in_(ids), *scope)
        .order_by(sim.desc(), Memory.id)
    )
    out = []
    for r in rows:
        pools = (("vector", vector_ids), ("text", text_ids), ("subject", subject_ids))
        channels = [c for c, pool in pools if r.id in pool]
        out.append(
            Candidate(
                id=r.id,
                content=r.content,
                context=r.context,
                tags=list(r.tags or []),
                keywords=list(r.keywords or []),
                session_id=r.session_id,
                created_at=r.created_at,
                occurred_at=r.occurred_at,
                valid_to=r.valid_to,
                similarity=float(r.sim or 0.0),
                channels=channels,
            )
        )
    return out


async def previous_in_session(session: AsyncSession, *, note: Note) -> uuid.UUID | None:
    """The memory just before this one in its session (same session id, else same day)."""
    stmt = select(Memory.id).where(
        Memory.tenant_id == note.tenant_id,
        Memory.cube_id == note.cube_id,
        Memory.status == "active",
        Memory.kind != SUMMARY_KIND,
        tuple_(Memory.created_at, Memory.id) < tuple_(note.created_at, note.id),
    )
    if note.session_id is not None:
        stmt = stmt.where(Memory.session_id == note.session_id)
    elif note.occurred_at is not None:
        day = note.occurred_at.astimezone(UTC).date()
        stmt = stmt.where(
            Memory.session_id.is_(None),
            cast(func.timezone("UTC", Memory.occurred_at), Date) == day,
        )
    else:
        return None
    stmt = stmt.order_by(Memory.created_at.desc(), Memory.id.desc()).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


async def evolutions_since(session: AsyncSession, *, memory_id: uuid.UUID, since: datetime) -> int:
    """How many ``evolve`` versions the memory got since ``since`` (for the daily cap)."""
    n = await session.execute(
        select(func.count()).where(
            MemoryVersion.memory_id == memory_id,
            MemoryVersion.change_kind == "evolve",
            MemoryVersion.created_at >= since,
        )
    )
    return int(n.scalar_one())


async def revise(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    change: versions.Change,
    values: dict[str, Any],
) -> int:
    """Set enrichment fields as a new version (content untouched); returns the version."""
    unknown = set(values) - REVISABLE
    if unknown:
        raise ValueError(f"not revisable by enrichment: {sorted(unknown)}")
    mem = await memories.load(session, tenant_id=tenant_id, memory_id=memory_id, for_update=True)
    for name, value in values.items():
        setattr(mem, name, value)
    mem.version += 1
    mem.updated_at = datetime.now(UTC)
    await session.flush()
    await versions.append(session, mem, change)
    return mem.version


async def set_enrichment_status(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID, status: str
) -> None:
    """Record how enrichment went (a processing state, not a change of the memory)."""
    await session.execute(
        update(Memory)
        .where(Memory.id == memory_id, Memory.tenant_id == tenant_id)
        .values(enrichment_status=status)
        .execution_options(synchronize_session=False)
    )
