"""A memory's conversational context, taken from what is stored, not from its write request.

A turn is indexed with the turns said just before it in the same thread (``CONTEXT_TURNS``
of them, see ``memsvc.store.indexing``): an answer ("yes, last Sunday") is only findable by
the words of the question it answers. Only a short turn is (``CONTEXT_UP_TO`` words): a long
message names its own subject. The thread of a memory is its ``session_id``; without
one, the memories of the same day (``occurred_at``, UTC) and the same user and agent that
have no session either. The turns before a memory are the thread's latest ones in creation
order: earlier items of the same request first, then the cube's stored memories. So a
conversation written one turn a request is indexed exactly as one written in one batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.indexing import CONTEXT_TURNS, context_line
from memsvc.store.models import Memory, MemorySource, Source

# ("session", session_id) or ("day", date, user_id, agent_id); None: no thread, no context.
Thread = tuple[Hashable, ...]


def thread_of(
    *,
    session_id: str | None,
    occurred_at: datetime | None,
    user_id: str | None,
    agent_id: str | None,
) -> Thread | None:
    """Which conversation a memory belongs to, for its context."""
    if session_id is not None:
        return ("session", session_id)
    if occurred_at is not None:
        return ("day", occurred_at.astimezone(UTC).date(), user_id, agent_id)
    return None


def in_thread(thread: Thread) -> list[ColumnElement[bool]]:
    """SQL conditions on ``Memory`` for the memories of a thread (within a cube)."""
    if thread[0] == "session":
        return [Memory.session_id == thread[1]]
    day: Any = thread[1]
    assert isinstance(day, date)
    start = datetime.combine(day, time(), tzinfo=UTC)
    return [
        Memory.session_id.is_(None),
        Memory.occurred_at >= start,
        Memory.occurred_at < start + timedelta(days=1),
        Memory.user_id.is_not_distinct_from(thread[2]),
        Memory.agent_id.is_not_distinct_from(thread[3]),
    ]


def in_batch(threads: Sequence[Thread | None], texts: Sequence[str]) -> list[list[str]]:
    """For each item of a batch, the texts of up to ``CONTEXT_TURNS`` preceding items of its
    thread, oldest first (the batch is in creation order)."""
    out: list[list[str]] = []
    seen: dict[Thread, list[str]] = {}
    for thread, text in zip(threads, texts, strict=True):
        if thread is None:
            out.append([])
            continue
        before = seen.setdefault(thread, [])
        out.append(before[-CONTEXT_TURNS:])
        before.append(text)
    return out


def speakers_of_memory() -> ScalarSelect[Any]:
    """A column: the speakers of ``Memory``'s sources (or NULL). Sources of any version, as
    ``versions.sources_of`` reads them: enrichment and evolution write versions without
    sources of their own, and the speaker of a turn does not change with its keywords."""
    return (
        select(func.array_agg(distinct(Source.speaker)).filter(Source.speaker.is_not(None)))
        .join(MemorySource, MemorySource.source_id == Source.id)
        .where(MemorySource.memory_id == Memory.id)
        .correlate(Memory)
        .scalar_subquery()
    )


async def stored_tails(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, threads: set[Thread]
) -> dict[Thread, list[str]]:
    """Each thread's latest ``CONTEXT_TURNS`` stored memories (active ones), as context lines
    (``Speaker: first words``), oldest first. One query for the sessions, one per day."""
    out: dict[Thread, list[str]] = {}
    speakers = speakers_of_memory()
    live = (Memory.tenant_id == tenant_id, Memory.cube_id == cube_id, Memory.status == "active")
    sessions = [t[1] for t in threads if t[0] == "session"]
    if sessions:
        ranked = (
            select(
                Memory.session_id,
                Memory.content,
                speakers.label("speakers"),
                Memory.created_at,
                func.row_number()
                .over(
                    partition_by=Memory.session_id,
                    order_by=(Memory.created_at.desc(), Memory.id.desc()),
                )
                .label("n"),
            )
            .where(*live, Memory.session_id.in_(sessions))
            .subquery()
        )
        rows = await session.execute(
            select(ranked.c.session_id, ranked.c.content, ranked.c.speakers)
            .where(ranked.c.n <= CONTEXT_TURNS)
            .order_by(ranked.c.session_id, ranked.c.created_at)
        )
        for sid, content, spk in rows:
            out.setdefault(("session", sid), []).append(context_line(spk or (), content))
    for thread in threads:
        if thread[0] != "day":
            continue
        latest = await session.execute(
            select(Memory.content, speakers)
            .where(*live, *in_thread(thread))
            .order_by(Memory.created_at.desc(), Memory.id.desc())
            .limit(CONTEXT_TURNS)
        )
        tail = [context_line(spk or (), content) for content, spk in latest]
        if tail:
            out[thread] = tail[::-1]
    return out


def contexts(
    threads: Sequence[Thread | None], texts: Sequence[str], stored: dict[Thread, list[str]]
) -> list[list[str]]:
    """Each item's context: the stored tail of its thread, then the batch's earlier items,
    the last ``CONTEXT_TURNS`` of them."""
    out = []
    for thread, batch_ctx in zip(threads, in_batch(threads, texts), strict=True):
        before = (stored.get(thread, []) if thread is not None else []) + batch_ctx
        out.append(before[-CONTEXT_TURNS:])
    return out
