"""Note builders: who constructs notes and decides links — heuristics or an LLM.

Both implement :class:`NoteBuilder`; :func:`builder_for` picks LLM mode when an LLM is
configured and heuristic mode otherwise (see :mod:`memsvc.graph.heuristics` for what the
heuristic mode does and does not do).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from prometheus_client import Counter

from memsvc.graph import heuristics, linking
from memsvc.graph.linking import LinkPlan
from memsvc.graph.prompts import (
    ENRICH_NOTE,
    LINK_DECIDE,
    CandidateView,
    EnrichNoteContext,
    LinkDecideContext,
    NoteView,
    check_link_decisions,
)
from memsvc.llm import LLM, LLMError, Usage
from memsvc.logs import safe_error
from memsvc.store.notes import Candidate, Note

log = logging.getLogger("memsvc.graph")

LLM_FALLBACKS = Counter(
    "memsvc_llm_fallbacks_total", "Enrichment steps done by the heuristic instead", ["task", "why"]
)

HEURISTIC_POLICY = "a-mem:heuristic.v1"

# Heuristic links per new memory (besides the session's ``follows``). On the LoCoMo dev
# conversations a cap of 8 gave ~7 links per memory and 3 ~2.6, with the same recall@10
# either way (bench/enrich.py): the sparser graph is kept. Thresholds: graph/linking.py.
HEURISTIC_MAX_LINKS = 3

# At most this many candidates are shown to the LLM.
LLM_CANDIDATES = 8


@dataclass
class NoteFields:
    keywords: list[str]
    tags: list[str]
    context: str
    # Set when the LLM gave no usable answer and the heuristic built these instead: why
    # (``invalid_llm_output``, ``llm_unavailable``, ``llm_circuit_open``, ``llm_budget``).
    fallback: str | None = None


@dataclass
class EvolutionPlan:
    target_id: uuid.UUID
    reason: str
    context: str | None = None
    tags: list[str] | None = None


@dataclass
class Decisions:
    links: list[LinkPlan] = field(default_factory=list)
    evolutions: list[EvolutionPlan] = field(default_factory=list)
    fallback: str | None = None  # as in NoteFields


class NoteBuilder(Protocol):
    """Constructs a note and decides its links; records who it is on versions and links."""

    policy: str
    model: str | None

    def prompt_version(self, task: str) -> str: ...

    async def construct(self, note: Note, usage: Usage) -> NoteFields: ...

    async def decide(
        self,
        note: Note,
        fields: NoteFields,
        candidates: list[Candidate],
        usage: Usage,
        *,
        max_links: int,
        max_evolutions: int,
        subjects: linking.Subjects | None = None,
        previous: uuid.UUID | None = None,
    ) -> Decisions: ...


def fmt_date(at: datetime | None) -> str | None:
    return f"{at.day} {at.strftime('%B %Y')}" if at else None


class HeuristicBuilder:
    """No LLM: keyword/entity extraction and similarity + entity-overlap linking."""

    policy = HEURISTIC_POLICY
    model: str | None = None

    def prompt_version(self, task: str) -> str:
        return HEURISTIC_POLICY

    async def construct(self, note: Note, usage: Usage) -> NoteFields:
        ents = heuristics.entities(note.content)
        kws = heuristics.keywords(note.content)
        return NoteFields(
            keywords=kws,
            tags=heuristics.tags(note.tags, ents),
            context=heuristics.context_line(
                kind=note.kind,
                keywords=kws,
                entities=ents,
                speakers=note.speakers,
                occurred_at=note.occurred_at,
            ),
        )

    async def decide(
        self,
        note: Note,
        fields: NoteFields,
        candidates: list[Candidate],
        usage: Usage,
        *,
        max_links: int,
        max_evolutions: int,
        subjects: linking.Subjects | None = None,
        previous: uuid.UUID | None = None,
    ) -> Decisions:
        if subjects is None:
            names, _, others = linking.lookups(note, [])
            subjects = linking.Subjects(names=names, speakers=frozenset(others))
        links = linking.decide(
            note,
            candidates,
            subjects,
            max_links=min(max_links, HEURISTIC_MAX_LINKS),
            previous=previous,
        )
        return Decisions(links=links)


class LLMBuilder:
    """LLM mode: ``enrich_note`` builds the note, ``link_decide`` links and evolves.

    One builder serves one enrichment. When the LLM gives no usable answer (an
    :class:`LLMError`: invalid output after its repair call, provider down, breaker open,
    budget spent) the heuristic does that step and every later step of this enrichment,
    so garbage from the provider costs at most 2 calls per enrichment; the result says
    so (``fallback``), never a failed job.
    """

    policy = "a-mem:llm.v1"

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.model: str | None = llm.model
        self.heuristic = HeuristicBuilder()
        self.fallback: str | None = None

    def _fell_back(self, task: str, exc: LLMError) -> str:
        self.fallback = exc.why
        LLM_FALLBACKS.labels(task, exc.why).inc()
        log.warning("enrichment %s: heuristic fallback (%s): %s", task, exc.why, safe_error(exc))
        return exc.why

    def prompt_version(self, task: str) -> str:
        return {"enrich": ENRICH_NOTE.id, "link": LINK_DECIDE.id}[task]

    async def construct(self, note: Note, usage: Usage) -> NoteFields:
        ctx = EnrichNoteContext(
            content=note.content,
            kind=note.kind,
            speakers=note.speakers,
            date=fmt_date(note.occurred_at),
            tags=note.tags,
        )
        if self.fallback is None:
            try:
                resp = await self.llm.run(ENRICH_NOTE, ctx, usage=usage)
            except LLMError as exc:
                self._fell_back(ENRICH_NOTE.id, exc)
        if self.fallback is not None:
            fields = await self.heuristic.construct(note, usage)
            fields.fallback = self.fallback
            return fields
        return NoteFields(
            keywords=resp.keywords,
            tags=list(dict.fromkeys([*note.tags, *resp.tags])),
            context=resp.context,
        )

    async def decide(
        self,
        note: Note,
        fields: NoteFields,
        candidates: list[Candidate],
        usage: Usage,
        *,
        max_links: int,
        max_evolutions: int,
        subjects: linking.Subjects | None = None,
        previous: uuid.UUID | None = None,
    ) -> Decisions:
        shown = candidates[:LLM_CANDIDATES]
        if not shown:
            return Decisions()
        if self.fallback is None:
            try:
                return await self._decide(note, fields, shown, usage, max_links, max_evolutions)
            except LLMError as exc:
                self._fell_back(LINK_DECIDE.id, exc)
        decisions = await self.heuristic.decide(
            note,
            fields,
            candidates,
            usage,
            max_links=max_links,
            max_evolutions=max_evolutions,
        )
        decisions.fallback = self.fallback
        return decisions

    async def _decide(
        self,
        note: Note,
        fields: NoteFields,
        shown: list[Candidate],
        usage: Usage,
        max_links: int,
        max_evolutions: int,
    ) -> Decisions:
        ctx = LinkDecideContext(
            note=NoteView(
                content=note.content,
                context=fields.context,
                keywords=fields.keywords,
                tags=fields.tags,
                speakers=note.speakers,
                date=fmt_date(note.occurred_at),
            ),
            candidates=[
                CandidateView(
                    n=i,
                    content=c.content,
                    context=c.context,
                    tags=c.tags,
                    date=fmt_date(c.occurred_at or c.created_at),
                    similarity=round(c.similarity, 3),
                )
                for i, c in enumerate(shown, start=1)
            ],
            max_links=max_links,
            max_evolutions=max_evolutions,
        )
        resp = await self.llm.run(
            LINK_DECIDE, ctx, usage=usage, check=check_link_decisions(len(shown))
        )
        links = [
            LinkPlan(
                target_id=shown[d.candidate - 1].id,
                relation=d.relation,
                weight=d.weight,
                reason=d.reason,
                same_subject=d.same_subject,
            )
            for d in resp.links
        ][:max_links]
        evolutions = [
            EvolutionPlan(
                target_id=shown[e.candidate - 1].id, reason=e.reason, context=e.context, tags=e.tags
            )
            for e in resp.evolutions
            if e.context or e.tags
        ]
        return Decisions(links=links, evolutions=evolutions)


def builder_for(llm: LLM | None) -> NoteBuilder:
    """LLM mode when an LLM is configured, heuristic mode otherwise."""
    return LLMBuilder(llm) if llm is not None else HeuristicBuilder()
