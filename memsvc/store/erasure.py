"""Privacy erase: a hard delete removes every copy of a memory's content.

Where a memory's words are kept, and what erasing does to each:

    memory row          content, index text, tags, keywords, context, metadata, embedding
                        blanked; the row stays as status ``erased`` (a 404 to every reader)
    memory_version      the same fields and the edit reason blanked in every version
    source              raw text and metadata of the sources no other memory uses
    other memories      index texts that carried it as session context are rebuilt
    versions caused     evolutions of other memories it caused keep their change, lose
      by it             the reason (an LLM's reason quotes both notes)
    link                every edge to or from it deleted (reasons quote the notes)
    idempotency_record  the stored answer (which holds the content) becomes a tombstone: a
                        replay of the create answers 410 ``memory_erased``
    job                 errors and results of its jobs dropped (payloads hold only ids)
    retrieval_trace     every ask trace that names it deleted (probes and cues may quote it)
    summaries           every version of a summary that covered it blanked (extractive
                        summaries copy its sentences, an LLM's paraphrase them); a summary
                        whose current version did is soft deleted blank, as a new version,
                        and its thread is queued to be summarised again without it

The audit row counts what was erased and names no content.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store import context, memories, passages, summaries, traces, versions
from memsvc.store.caches import caches_of
from memsvc.store.idempotency import tombstone
from memsvc.store.indexing import CONTEXT_MARK, said_in_context
from memsvc.store.models import (
    AuditLog,
    Job,
    Link,
    Memory,
    MemorySource,
    MemoryVersion,
    Source,
    WriteDecision,
)

_BLANK: dict[str, Any] = {
    "content": "",
    "tags": [],
    "keywords": [],
    "context": None,
    "metadata_": {},
}


@dataclass
class Erased:
    """What one erase reached (the audit row's detail)."""

    cube_id: str
    versions: int
    sources: int = 0
    idempotency_records: int = 0
    jobs: int = 0
    links: int = 0
    derived_versions: int = 0
    reindexed_memories: int = 0
    traces: int = 0
    summary_versions: int = 0
    decisions: int = 0


def _count(res: Any) -> int:
    return int(res.rowcount)


async def erase(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID, actor: str
) -> None:
    """Erase a memory's content everywhere it is kept (see the module docstring)."""
    mem = await memories.load(session, tenant_id=tenant_id, memory_id=memory_id, for_update=True)
    texts = await _said(session, mem)
    done = Erased(cube_id=str(mem.cube_id), versions=mem.version)
    done.reindexed_memories = await _reindex_session(session, mem, texts)
    await session.execute(
        update(Memory)
        .where(Memory.id == mem.id)
        .values(**_BLANK, index_text="", embedding=None, status="erased", updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    await passages.drop(session, mem.id)  # vectors of its words
    await session.execute(
        update(MemoryVersion)
        .where(MemoryVersion.memory_id == mem.id)
        .values(**_BLANK, reason=None, embedding_hash=None)
        .execution_options(synchronize_session=False)
    )
    # Raw inputs used by no other memory are erased with it.
    shared = select(MemorySource.source_id).where(MemorySource.memory_id != mem.id)
    mine = select(MemorySource.source_id).where(MemorySource.memory_id == mem.id)
    done.sources = _count(
        await session.execute(
            update(Source)
            .where(Source.id.in_(mine), Source.id.not_in(shared))
            .values(text=None, metadata_={})
            .execution_options(synchronize_session=False)
        )
    )
    done.derived_versions = _count(
        await session.execute(
            update(MemoryVersion)
            .where(MemoryVersion.caused_by == mem.id, MemoryVersion.reason.is_not(None))
            .values(reason=None)
            .execution_options(synchronize_session=False)
        )
    )
    # After the reasons above are dropped: the scrub's own versions name the memory.
    done.summary_versions, scrubbed = await _scrub_summaries(session, mem)
    done.links = _count(
        await session.execute(
            delete(Link)
            .where(or_(Link.source_id == mem.id, Link.target_id == mem.id))
            .execution_options(synchronize_session=False)
        )
    )
    done.jobs = _count(
        await session.execute(
            update(Job)
            .where(Job.tenant_id == tenant_id, Job.payload["memory_id"].astext == str(mem.id))
            .where(or_(Job.last_error.is_not(None), Job.result.is_not(None)))
            .values(last_error=None, result=None)
            .execution_options(synchronize_session=False)
        )
    )
    # A write policy's reasons may quote the messages (an LLM's always may).
    done.decisions = _count(
        await session.execute(
            update(WriteDecision)
            .where(or_(WriteDecision.memory_id == mem.id, WriteDecision.target_id == mem.id))
            .values(reason="")
            .execution_options(synchronize_session=False)
        )
    )
    # Traces quote what they found: the summaries that held its words as well.
    done.traces = await traces.forget_memory(session, [mem.id, *scrubbed])
    done.idempotency_records = await tombstone(session, tenant_id=tenant_id, memory_id=mem.id)
    caches_of(session).touch_cube(mem.cube_id)
    session.add(
        AuditLog(
            tenant_id=tenant_id,
            actor=actor,
            action="memory.erase",
            target_id=str(mem.id),
            detail=asdict(done),
        )
    )
    await session.flush()


async def _said(session: AsyncSession, mem: Memory) -> list[str]:
    """Every content the memory ever had (each may sit in other memories' index texts)."""
    rows = await session.execute(
        select(MemoryVersion.content).where(MemoryVersion.memory_id == mem.id).distinct()
    )
    return [c for c in {mem.content, *rows.scalars()} if c]


async def _reindex_session(session: AsyncSession, mem: Memory, texts: list[str]) -> int:
    """Drop the memory's words from the context of later memories of its thread (their
    index texts, see ``memsvc.store.context``)."""
    thread = context.thread_of(
        session_id=mem.session_id,
        occurred_at=mem.occurred_at,
        user_id=mem.user_id,
        agent_id=mem.agent_id,
    )
    if thread is None or not texts:
        return 0
    rows = (
        await session.execute(
            select(Memory.id, Memory.index_text).where(
                Memory.cube_id == mem.cube_id,
                *context.in_thread(thread),
                Memory.id != mem.id,
                Memory.index_text.contains(CONTEXT_MARK),
            )
        )
    ).all()
    said = [said_in_context(t) for t in texts]
    changed = 0
    for other_id, index_text in rows:
        own, _, ctx = index_text.partition(CONTEXT_MARK)
        turns = ctx.removesuffix(")").split(" / ")
        kept = [t for t in turns if not any(s in t for s in said)]
        if len(kept) == len(turns):
            continue
        rebuilt = own + (CONTEXT_MARK + " / ".join(kept) + ")" if kept else "")
        await session.execute(
            update(Memory)
            .where(Memory.id == other_id)
            .values(index_text=rebuilt)
            .execution_options(synchronize_session=False)
        )
        changed += 1
    return changed


async def _scrub_summaries(session: AsyncSession, mem: Memory) -> tuple[int, list[uuid.UUID]]:
    """Blank every summary version that covered the memory; a summary whose current version
    did becomes a blank soft-deleted version (re-summarised by the job queued here). How many
    versions were blanked, and the summaries they belong to."""
    await summaries.schedule(
        session,
        tenant_id=mem.tenant_id,
        cube_id=mem.cube_id,
        threads=[summaries.thread_of_row(mem)],
    )
    covering = await summaries.covering(session, memory_id=mem.id)
    if not covering:
        return 0, []
    by_summary: dict[uuid.UUID, set[int]] = {}
    for sid, v in covering:
        by_summary.setdefault(sid, set()).add(v)
    blanked = 0
    for sid, vs in by_summary.items():
        blanked += _count(
            await session.execute(
                update(MemoryVersion)
                .where(MemoryVersion.memory_id == sid, MemoryVersion.version.in_(vs))
                .values(content="", keywords=[], context=None, reason=None, embedding_hash=None)
                .execution_options(synchronize_session=False)
            )
        )
        row = (
            await session.execute(
                select(Memory)
                .where(Memory.id == sid, Memory.status != "erased")
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if row is None or row.version not in vs:
            continue
        row.content, row.index_text, row.embedding = "", "", None
        row.keywords, row.context = [], None
        row.status = "deleted"
        row.version += 1
        row.updated_at = datetime.now(UTC)
        await session.flush()
        await passages.drop(session, sid)
        await versions.append(
            session,
            row,
            versions.Change(
                actor=summaries.ACTOR,
                change_kind="erase",
                reason="a memory it summarised was erased",
                caused_by=mem.id,
            ),
        )
    return blanked, list(by_summary)
