"""A-MEM enrichment of one memory: note construction, linking, evolution of neighbours.

Runs as the ``enrich`` job, in two committed phases, each safe to repeat after a crash:

1. **note** — keywords, tags and a one-line context, stored as a new version
   (``enrich``; content unchanged). Skipped when the memory already has an ``enrich``
   version (checked under the row lock).
2. **links + evolution** — candidates by vector kNN and full text in the cube, decisions
   by the builder, then in one transaction: links (``ON CONFLICT DO NOTHING`` on the live
   edge index), neighbour evolutions as ``evolve`` versions with ``caused_by`` = this
   memory (skipped when such a version exists), closing ``valid_to`` of facts this one
   supersedes or contradicts about the same subject, and ``enrichment_status = done``.
   A memory whose status is already ``done`` is not processed again.

Caps stop runaway rewrites: at most ``MAX_LINKS_PER_INSERT`` links and
``MAX_EVOLUTIONS_PER_INSERT`` evolutions per new memory, and at most
``MAX_EVOLUTIONS_PER_MEMORY_PER_DAY`` evolutions of any one memory in 24 hours.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.graph import linking
from memsvc.graph.builders import (
    HEURISTIC_POLICY,
    Decisions,
    EvolutionPlan,
    NoteBuilder,
    NoteFields,
)
from memsvc.llm import Usage
from memsvc.store import links as link_store
from memsvc.store import notes
from memsvc.store.db import Database
from memsvc.store.notes import Candidate, Note
from memsvc.store.versions import Change

ACTOR_ENRICH = "system:enrich"
ACTOR_EVOLVE = "system:evolve"

CANDIDATES_K = 10
MAX_LINKS_PER_INSERT = 8
MAX_EVOLUTIONS_PER_INSERT = 3
MAX_EVOLUTIONS_PER_MEMORY_PER_DAY = 5
MAX_TAGS = 16
CLOSING_RELATIONS = frozenset({"supersedes", "contradicts"})


@dataclass
class EnrichResult:
    """What one enrichment run did (stored in ``job.result``)."""

    memory_id: uuid.UUID
    mode: str
    skipped: str | None = None
    note_version: int | None = None
    links_created: int = 0
    links_proposed: int = 0
    duplicates: list[str] = field(default_factory=list)
    evolved: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    capped: int = 0
    # Steps the heuristic did instead of the LLM: step ("note", "links") -> why.
    fallbacks: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        fallback: dict[str, Any] = {}
        if self.fallbacks:
            fallback = {
                "fallback": "heuristic",
                "why": next(iter(self.fallbacks.values())),
                "fallbacks": dict(self.fallbacks),
            }
        return {
            **fallback,
            "memory_id": str(self.memory_id),
            "mode": self.mode,
            "skipped": self.skipped,
            "note_version": self.note_version,
            "links_created": self.links_created,
            "links_proposed": self.links_proposed,
            "duplicates": self.duplicates,
            "evolved": self.evolved,
            "closed": self.closed,
            "capped": self.capped,
        }


async def _checkpoint(stage: str) -> None:
    """Between committed phases; a seam for crash tests (patched to pause there)."""


def _mode(builder: NoteBuilder) -> str:
    return "heuristic" if builder.model is None else "llm"


async def enrich_memory(
    db: Database,
    *,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    builder: NoteBuilder,
    usage: Usage,
    job_id: int | None = None,
) -> EnrichResult:
    """Enrich one memory (idempotent: re-running after a crash duplicates nothing)."""
    result = EnrichResult(memory_id=memory_id, mode=_mode(builder))
    async with db.transaction() as s:
        note = await notes.load_note(s, tenant_id=tenant_id, memory_id=memory_id)
        if note is not None and note.status != "active":
            await notes.set_enrichment_status(
                s, tenant_id=tenant_id, memory_id=memory_id, status="skipped"
            )
    if note is None or note.status != "active":
        result.skipped = "memory is gone" if note is None else f"memory is {note.status}"
        return result
    if note.enrichment_status == "done":
        result.skipped = "already enriched"
        return result

    fields = await _construct(db, note, builder, usage, result)
    await _checkpoint("note")

    async with db.transaction() as s:
        # Salient terms only (OR-queries of many words are slow); speaker names are in
        # every indexed text of a conversation, so they match everything.
        speakers = {sp.lower() for sp in note.speakers}
        terms = [k for k in fields.keywords if k.lower() not in speakers][:8]
        subjects = await _subjects(s, note) if builder.model is None else None
        also = [*subjects.anchors, *subjects.recent] if subjects else []
        candidates = await notes.candidates(s, note=note, terms=terms, k=CANDIDATES_K, also=also)
        previous = await notes.previous_in_session(s, note=note)
    decisions = await builder.decide(
        note,
        fields,
        candidates,
        usage,
        max_links=MAX_LINKS_PER_INSERT,
        max_evolutions=MAX_EVOLUTIONS_PER_INSERT,
        subjects=subjects,
        previous=previous,
    )
    await _apply(db, note, builder, candidates, previous, decisions, result, job_id)
    await _checkpoint("links")
    return result


async def _subjects(s: AsyncSession, note: Note) -> linking.Subjects:
    """Heuristic mode: the note's names and keywords, their counts in the cube, and the
    anchor (first mention) and latest mentions of each name that is not common."""
    speakers = await notes.session_speakers(s, note=note)
    names, terms, others = linking.lookups(note, speakers)
    n, df = await notes.term_counts(s, note=note, terms=[*names, *terms])
    # Rarest first; a name or term only this memory holds links nothing.
    names = sorted((x for x in names if df.get(x, 0) > 1), key=lambda x: (df[x], x))
    terms = sorted((x for x in terms if df.get(x, 0) > 1), key=lambda x: (df[x], x))
    subjects = linking.Subjects(
        n=n,
        df=df,
        names=names[: linking.MAX_NAMES],
        terms=terms[: linking.MAX_TERMS],
        speakers=frozenset(others),
    )
    for name in subjects.names:
        if linking.common_name(df[name], n):
            continue
        first, recent = await notes.mentions(
            s, note=note, name=name, recent=linking.RECENT_MENTIONS
        )
        if first is not None:
            subjects.anchors.setdefault(first, name)
        subjects.recent.extend(recent)
    return subjects


async def _construct(
    db: Database, note: Note, builder: NoteBuilder, usage: Usage, result: EnrichResult
) -> NoteFields:
    if note.has_enrich_version:
        return NoteFields(keywords=note.keywords, tags=note.tags, context=note.context or "")
    fields = await builder.construct(note, usage)
    if fields.fallback:
        result.fallbacks["note"] = fields.fallback
        change = Change(
            actor=ACTOR_ENRICH,
            change_kind="enrich",
            reason=f"note construction ({HEURISTIC_POLICY}; LLM fallback: {fields.fallback})",
            policy=HEURISTIC_POLICY,
            model=None,
        )
    else:
        change = Change(
            actor=ACTOR_ENRICH,
            change_kind="enrich",
            reason=f"note construction ({builder.prompt_version('enrich')})",
            policy=builder.policy,
            model=builder.model,
        )
    async with db.transaction() as s:
        locked = await notes.lock(s, tenant_id=note.tenant_id, memory_id=note.id)
        # Checked under the row lock: a concurrent run of this job may have written it.
        if locked is not None and not await notes.has_version(
            s, memory_id=note.id, change_kind="enrich"
        ):
            tags = list(dict.fromkeys([*locked.tags, *fields.tags]))[:MAX_TAGS]
            result.note_version = await notes.revise(
                s,
                tenant_id=note.tenant_id,
                memory_id=note.id,
                change=change,
                values={"keywords": fields.keywords, "tags": tags, "context": fields.context},
            )
            fields.tags = tags
    note.keywords, note.tags, note.context = fields.keywords, fields.tags, fields.context
    return fields


def _closing_time(note: Note) -> datetime:
    return note.valid_from or note.occurred_at or note.created_at


def _older(c: Candidate, note: Note) -> bool:
    return (c.occurred_at or c.created_at) <= (note.occurred_at or note.created_at)


async def _apply(
    db: Database,
    note: Note,
    builder: NoteBuilder,
    candidates: list[Candidate],
    previous: uuid.UUID | None,
    decisions: Decisions,
    result: EnrichResult,
    job_id: int | None,
) -> None:
    by_id = {c.id: c for c in candidates}
    prov: dict[str, Any] = {
        "job_id": job_id,
        "model": builder.model,
        "prompt_version": builder.prompt_version("link"),
    }
    if decisions.fallback:
        result.fallbacks["links"] = decisions.fallback
        prov = {
            "job_id": job_id,
            "model": None,
            "prompt_version": HEURISTIC_POLICY,
            "fallback": decisions.fallback,
        }
    new_links = [
        link_store.NewLink(
            source_id=note.id,
            target_id=p.target_id,
            relation=p.relation,
            weight=p.weight,
            reason=p.reason,
            created_by=ACTOR_ENRICH,
            provenance={**prov, "duplicate": True} if p.duplicate else dict(prov),
        )
        for p in decisions.links
    ]
    if previous is not None:
        where = f"session {note.session_id}" if note.session_id else "the same day"
        new_links.append(
            link_store.NewLink(
                source_id=note.id,
                target_id=previous,
                relation="follows",
                weight=1.0,
                reason=f"next memory in {where}",
                created_by=ACTOR_ENRICH,
                provenance={**prov, "model": None, "prompt_version": "rule:same-session"},
            )
        )
    result.links_proposed = len(new_links)
    result.duplicates = [str(p.target_id) for p in decisions.links if p.duplicate]

    # One evolution per neighbour: refreshed context/tags and/or closed validity.
    plans: dict[uuid.UUID, EvolutionPlan] = {}
    for e in decisions.evolutions:
        plans.setdefault(e.target_id, e)
    closing: set[uuid.UUID] = set()
    for p in decisions.links:
        c = by_id.get(p.target_id)
        if (
            c is not None
            and p.relation in CLOSING_RELATIONS
            and p.same_subject
            and c.valid_to is None
            and _older(c, note)
        ):
            closing.add(c.id)
            plans.setdefault(c.id, EvolutionPlan(target_id=c.id, reason=p.reason))

    async with db.transaction() as s:
        locked = await notes.lock(s, tenant_id=note.tenant_id, memory_id=note.id)
        if locked is None or locked.enrichment_status == "done":
            result.skipped = "already enriched"
            return
        inserted = await link_store.insert_many(
            s, tenant_id=note.tenant_id, cube_id=note.cube_id, links=new_links
        )
        result.links_created = len(inserted)
        since = datetime.now(UTC) - timedelta(days=1)
        budget = MAX_EVOLUTIONS_PER_INSERT
        for target_id, plan in plans.items():
            if budget == 0:
                result.capped += 1
                continue
            done = await _evolve(s, note, builder, plan, target_id in closing, since, result)
            budget -= int(done)
        await notes.set_enrichment_status(
            s, tenant_id=note.tenant_id, memory_id=note.id, status="done"
        )


async def _evolve(
    s: AsyncSession,
    note: Note,
    builder: NoteBuilder,
    plan: EvolutionPlan,
    close: bool,
    since: datetime,
    result: EnrichResult,
) -> bool:
    """Apply one neighbour evolution as an ``evolve`` version; False when skipped."""
    if await notes.has_version(
        s, memory_id=plan.target_id, change_kind="evolve", caused_by=note.id
    ):
        return False
    if await notes.evolutions_since(s, memory_id=plan.target_id, since=since) >= (
        MAX_EVOLUTIONS_PER_MEMORY_PER_DAY
    ):
        result.capped += 1
        return False
    target = await notes.load_note(
        s, tenant_id=note.tenant_id, memory_id=plan.target_id, for_update=True
    )
    if target is None or target.status != "active":
        return False
    values: dict[str, Any] = {}
    if plan.context and plan.context != target.context:
        values["context"] = plan.context
    if plan.tags:
        tags = list(dict.fromkeys([*target.tags, *plan.tags]))[:MAX_TAGS]
        if tags != target.tags:
            values["tags"] = tags
    closes_at = _closing_time(note)
    if (
        close
        and target.valid_to is None
        and (target.valid_from is None or target.valid_from <= closes_at)
    ):
        values["valid_to"] = closes_at
    if not values:
        return False
    await notes.revise(
        s,
        tenant_id=note.tenant_id,
        memory_id=target.id,
        change=Change(
            actor=ACTOR_EVOLVE,
            change_kind="evolve",
            reason=f"{plan.reason} ({builder.prompt_version('link')})",
            caused_by=note.id,
            policy=builder.policy,
            model=builder.model,
        ),
        values=values,
    )
    result.evolved.append(str(target.id))
    if "valid_to" in values:
        result.closed.append(str(target.id))
    return True
