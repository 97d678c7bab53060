"""Summaries' store side: which memories each summary version covers, what is due for
(re-)summarising, and the two look-ups ``ask`` uses (:func:`windows_of`, :func:`members`).

A summary is a memory (``kind`` "summary"). Episodic summaries cover one *window*: up to
``WINDOW`` consecutive active memories of one conversation thread (``memsvc.store.context``:
same ``session_id``, else same UTC day, user and agent), in time order; a memory with
neither a session nor a date is in no thread, so in no window. Semantic summaries
cover one cluster of related memories. ``memory_summary`` rows name the member memories
(and their versions) of every summary version; the summary's ``metadata.summary`` says
which window or cluster it is (``key``, ``window``) and its span.

Scheduling is debounced: a write queues a ``summarise`` job for its thread (and one for the
cube's clusters) ``DEBOUNCE_S`` later, unless one is already queued, so a burst of writes
to a thread makes one job. Summaries never queue summarising (nor enrichment) themselves.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.schemas.memories import SUMMARY_KIND
from memsvc.store.context import Thread, in_thread, thread_of
from memsvc.store.jobs import enqueue_many
from memsvc.store.models import (
    Job,
    Memory,
    MemorySource,
    MemorySummary,
    MemoryVersion,
    Source,
)

JOB_KIND = "summarise"
ACTOR = "system:summarise"
# Memories per episodic window. 20 turns is about one sitting of a chat (LoCoMo sessions
# run 15-30 turns) and, at the extractive cap below, keeps about one sentence in four, so
# a summary still names most of who/what/when of its window; it also bounds one LLM call
# (20 turns of ~40 words fit any model's context with room for the answer).
WINDOW = 20
# Seconds a summarise job waits after the write that queued it: writes to the same thread
# within this time are folded into the one queued job.
DEBOUNCE_S = 5.0
SEMANTIC = "semantic"


def thread_key(thread: Thread) -> str:
    """A thread as a stable string (job payloads, summaries' metadata)."""
    return json.dumps([str(p) if isinstance(p, date) else p for p in thread])


def thread_from_key(key: str) -> Thread:
    """The thread a :func:`thread_key` names."""
    parts = json.loads(key)
    if not isinstance(parts, list) or not parts or parts[0] not in ("session", "day"):
        raise ValueError(f"not a thread key: {key!r}")
    if parts[0] == "day":
        return ("day", date.fromisoformat(parts[1]), parts[2], parts[3])
    return ("session", parts[1])


async def schedule(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    threads: Iterable[Thread | None],
) -> int:
    """Queue (debounced) the summarising of these threads and of the cube's clusters, in the
    caller's transaction; how many jobs were queued. No lock: two concurrent writers may
    queue two jobs for one thread, and the second then finds nothing to change."""
    wanted = {thread_key(t) for t in threads if t is not None} | {SEMANTIC}
    queued = await session.execute(
        select(Job.payload["scope"].astext).where(
            Job.tenant_id == tenant_id,
            Job.kind == JOB_KIND,
            Job.status == "queued",
            Job.payload["cube_id"].astext == str(cube_id),
        )
    )
    todo = sorted(wanted - set(queued.scalars()))
    await enqueue_many(
        session,
        kind=JOB_KIND,
        payloads=[{"cube_id": str(cube_id), "scope": key} for key in todo],
        tenant_id=tenant_id,
        run_after_s=DEBOUNCE_S,
    )
    return len(todo)


def thread_of_row(mem: Memory) -> Thread | None:
    """The thread of a stored memory (None for summaries: they are not summarised)."""
    return thread_of_values(
        {
            "kind": mem.kind,
            "session_id": mem.session_id,
            "occurred_at": mem.occurred_at,
            "user_id": mem.user_id,
            "agent_id": mem.agent_id,
        }
    )


def thread_of_values(row: Mapping[str, Any]) -> Thread | None:
    """The thread of a memory's column values (None for summaries: not summarised)."""
    if row.get("kind") == SUMMARY_KIND:
        return None
    return thread_of(
        session_id=row.get("session_id"),
        occurred_at=row.get("occurred_at"),
        user_id=row.get("user_id"),
        agent_id=row.get("agent_id"),
    )


@dataclass(frozen=True)
class Member:
    """A memory as a summary sees it."""

    id: uuid.UUID
    version: int
    content: str
    speakers: list[str]
    occurred_at: datetime | None
    created_at: datetime
    user_id: str | None
    agent_id: str | None
    session_id: str | None


def _speakers() -> Any:
    """The speakers of the sources of any version of ``Memory`` (enrichment's versions
    carry no sources of their own)."""
    return (
        select(func.array_agg(Source.speaker).filter(Source.speaker.is_not(None)))
        .join(MemorySource, MemorySource.source_id == Source.id)
        .where(MemorySource.memory_id == Memory.id)
        .correlate(Memory)
        .scalar_subquery()
    )


def _members_select() -> Any:
    return select(
        Memory.id,
        Memory.version,
        Memory.content,
        _speakers().label("speakers"),
        Memory.occurred_at,
        Memory.created_at,
        Memory.user_id,
        Memory.agent_id,
        Memory.session_id,
    )


def _member(row: Any) -> Member:
    return Member(
        id=row.id,
        version=row.version,
        content=row.content,
        speakers=sorted(set(row.speakers or [])),
        occurred_at=row.occurred_at,
        created_at=row.created_at,
        user_id=row.user_id,
        agent_id=row.agent_id,
        session_id=row.session_id,
    )


def _time_order() -> tuple[Any, ...]:
    return (Memory.occurred_at.asc().nulls_last(), Memory.created_at, Memory.id)


async def thread_members(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, thread: Thread
) -> list[Member]:
    """The thread's active memories (summaries left out), in time order."""
    rows = await session.execute(
        _members_select()
        .where(
            Memory.tenant_id == tenant_id,
            Memory.cube_id == cube_id,
            Memory.status == "active",
            Memory.kind != SUMMARY_KIND,
            *in_thread(thread),
        )
        .order_by(*_time_order())
    )
    return [_member(r) for r in rows]


async def members_by_id(
    session: AsyncSession, *, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Member]:
    """These active memories (summaries left out), in time order."""
    if not ids:
        return []
    rows = await session.execute(
        _members_select()
        .where(
            Memory.tenant_id == tenant_id,
            Memory.id.in_(ids),
            Memory.status == "active",
            Memory.kind != SUMMARY_KIND,
        )
        .order_by(*_time_order())
    )
    return [_member(r) for r in rows]


@dataclass(frozen=True)
class Existing:
    """A summary already written for a key: its state and what its version covers."""

    id: uuid.UUID
    version: int
    status: str
    window: int
    covers: tuple[tuple[uuid.UUID, int], ...]
    # (member id, its content at the covered version): what the summary was written from.
    said: tuple[tuple[uuid.UUID, str], ...]
    # Who wrote its latest version: a summary a client deleted stays deleted.
    actor: str = ACTOR

    @property
    def kept_deleted(self) -> bool:
        """Deleted by a client (not by the summariser): left alone."""
        return self.status == "deleted" and self.actor != ACTOR


async def existing(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, key: str
) -> list[Existing]:
    """The summaries written for ``key`` (not erased), with what their version covers."""
    rows = (
        await session.execute(
            select(Memory.id, Memory.version, Memory.status, Memory.metadata_, MemoryVersion.actor)
            .join(
                MemoryVersion,
                and_(MemoryVersion.memory_id == Memory.id, MemoryVersion.version == Memory.version),
            )
            .where(
                Memory.tenant_id == tenant_id,
                Memory.cube_id == cube_id,
                Memory.kind == SUMMARY_KIND,
                Memory.status != "erased",
                Memory.metadata_[("summary", "key")].astext == key,
            )
            .order_by(Memory.created_at, Memory.id)
        )
    ).all()
    covers = await covered(session, [(r.id, r.version) for r in rows])
    said = await _said(session, [c for cs in covers.values() for c in cs])
    return [
        Existing(
            id=r.id,
            version=r.version,
            status=r.status,
            window=int((r.metadata_ or {}).get("summary", {}).get("window", 0)),
            covers=tuple(covers.get(r.id, ())),
            said=tuple((mid, said.get((mid, mv), "")) for mid, mv in covers.get(r.id, ())),
            actor=r.actor,
        )
        for r in rows
    ]


async def _said(
    session: AsyncSession, versions: Sequence[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], str]:
    """The content of these memory versions."""
    if not versions:
        return {}
    rows = await session.execute(
        select(MemoryVersion.memory_id, MemoryVersion.version, MemoryVersion.content).where(
            tuple_(MemoryVersion.memory_id, MemoryVersion.version).in_(list(set(versions)))
        )
    )
    return {(mid, v): content for mid, v, content in rows}


async def covered(
    session: AsyncSession, versions: Sequence[tuple[uuid.UUID, int]]
) -> dict[uuid.UUID, list[tuple[uuid.UUID, int]]]:
    """Summary id -> (member id, member version) its given version covers, in time order."""
    if not versions:
        return {}
    rows = await session.execute(
        select(MemorySummary.summary_id, MemorySummary.member_id, MemorySummary.member_version)
        .where(tuple_(MemorySummary.summary_id, MemorySummary.summary_version).in_(list(versions)))
        .order_by(MemorySummary.summary_id, MemorySummary.position)
    )
    out: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = defaultdict(list)
    for sid, mid, mv in rows:
        out[sid].append((mid, mv))
    return out


async def record(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    summary_id: uuid.UUID,
    summary_version: int,
    covers: Sequence[tuple[uuid.UUID, int]],
) -> None:
    """Record that this summary version covers exactly ``covers`` (in time order)."""
    if covers:
        await session.execute(
            insert(MemorySummary),
            [
                {
                    "summary_id": summary_id,
                    "summary_version": summary_version,
                    "member_id": mid,
                    "member_version": mv,
                    "position": i,
                    "tenant_id": tenant_id,
                    "cube_id": cube_id,
                }
                for i, (mid, mv) in enumerate(covers)
            ],
        )


async def lock_key(session: AsyncSession, cube_id: uuid.UUID, key: str) -> None:
    """Serialise summarising of one key of a cube until the transaction ends (two workers
    on one thread would otherwise both create its first summary)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"{cube_id}|{key}"}
    )


def _live_summary() -> Any:
    """Join condition: a ``memory_summary`` row of its summary's current version, the
    summary active."""
    return and_(
        Memory.id == MemorySummary.summary_id,
        Memory.version == MemorySummary.summary_version,
        Memory.status == "active",
    )


async def windows_of(
    session: AsyncSession, memory_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Memory id -> ids of the live summaries whose current version covers it (episodic
    first, then semantic; oldest first). Memories no summary covers are left out."""
    if not memory_ids:
        return {}
    rows = await session.execute(
        select(MemorySummary.member_id, MemorySummary.summary_id)
        .join(Memory, _live_summary())
        .where(MemorySummary.member_id.in_(list(memory_ids)))
        .order_by(
            MemorySummary.member_id, Memory.layer, Memory.created_at, MemorySummary.summary_id
        )
    )
    out: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for mid, sid in rows:
        out[mid].append(sid)
    return dict(out)


async def members(
    session: AsyncSession, summary_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Summary id -> the active member memories its current version covers, in time order.
    Ids that are not live summaries are left out."""
    if not summary_ids:
        return {}
    member = Memory.__table__.alias("member")
    rows = await session.execute(
        select(MemorySummary.summary_id, MemorySummary.member_id)
        .join(Memory, _live_summary())
        .join(member, member.c.id == MemorySummary.member_id)
        .where(MemorySummary.summary_id.in_(list(summary_ids)), member.c.status == "active")
        .order_by(MemorySummary.summary_id, MemorySummary.position)
    )
    out: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for sid, mid in rows:
        out[sid].append(mid)
    return dict(out)


async def summarises(
    session: AsyncSession, *, summary_id: uuid.UUID
) -> dict[int, list[tuple[uuid.UUID, int]]]:
    """Version -> (member id, member version) of every version of one summary (provenance)."""
    rows = await session.execute(
        select(MemorySummary.summary_version, MemorySummary.member_id, MemorySummary.member_version)
        .where(MemorySummary.summary_id == summary_id)
        .order_by(MemorySummary.summary_version, MemorySummary.position)
    )
    out: dict[int, list[tuple[uuid.UUID, int]]] = defaultdict(list)
    for v, mid, mv in rows:
        out[v].append((mid, mv))
    return out


async def covering(session: AsyncSession, *, memory_id: uuid.UUID) -> list[tuple[uuid.UUID, int]]:
    """(summary id, summary version) of every summary version that covers the memory, any
    version of it (what a privacy erase must scrub)."""
    rows = await session.execute(
        select(MemorySummary.summary_id, MemorySummary.summary_version)
        .where(MemorySummary.member_id == memory_id)
        .order_by(MemorySummary.summary_id, MemorySummary.summary_version)
    )
    return [(sid, v) for sid, v in rows]
