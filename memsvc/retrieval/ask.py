"""``ask``: iterative retrieval after ComoRAG, under a budget, every step traced.

    cycle 0   retrieve   hybrid search for the question over every layer
              gate       does the best evidence cover the question's aspects (names,
                         words, periods; ``memsvc.retrieval.aspects``), or stand out by a
                         wide margin?  heuristic mode: yes -> select
              llm        (LLM mode) one structured call: an answer citing evidence, or up to
                         3 probe queries for what is missing; answered -> select
    cycle n   probe      the LLM's probes and/or the heuristic one (the names the best
                         evidence brings with the question's words) searched; the best
                         evidence's graph neighbours, the turns around it in its thread
                         (what happened next) and the members of summaries it found
              fold       new evidence joins the pool; then gate / llm again
    end       select     top_k of the pool, greedily: relevance plus the aspects an item
                         covers that those chosen before it do not; later finds compete
                         only for aspects the first pass left uncovered

The numbers below were chosen on LoCoMo dev (both conversations, written one turn a request)
and 5 LongMemEval dev questions (one per type) together, ask vs ``hybrid`` search recall@10,
heuristic mode (``bench/locomo.py --mode ask``, ``bench/lme.py --mode ask``; the grid in the
closing note of 2026-12-02): probes made of parts of the question, multi-query summed
relevance, and later finds competing for every place each lost LongMemEval answers that
search had at ranks 8-10 (LongMemEval 0.90 -> 0.73) for at most +0.01 on LoCoMo.

It stops at the gate, at an answer, or when the budget (cycles, LLM calls, tokens) or the
deadline runs out, with ``stopped`` saying which; the evidence gathered so far is returned
either way. An LLM failure (provider down, invalid output after the wrapper's one repair)
never fails the request: the answer is null, the evidence stands, the error is a trace step.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.config import AskSettings, Settings
from memsvc.errors import ValidationFailed
from memsvc.llm import LLM, Usage
from memsvc.llm.errors import LLMError
from memsvc.retrieval import aspects, presets
from memsvc.retrieval.ask_prompts import (
    ASK_ANSWER,
    EVIDENCE_WORDS,
    AskAnswerContext,
    AskAnswerResponse,
    AskEvidenceItem,
    check_answer,
)
from memsvc.retrieval.search import rank
from memsvc.runtime import ModelRuntime
from memsvc.schemas import (
    AskBudget,
    AskRequest,
    AskResponse,
    EffectiveLimits,
    Evidence,
    SearchFilters,
    SearchRequest,
    TraceStep,
)
from memsvc.schemas.memories import SUMMARY_KIND, MemoryRead
from memsvc.store import context, summaries
from memsvc.store import ingest as ingest_store
from memsvc.store import memories as store
from memsvc.store.models import Link, Memory

Emit = Callable[[TraceStep], Awaitable[None]]

# Candidates each query contributes to the pool.
DEPTH = 30
# Core blocks an ask returns at most (one per user/agent scope).
CORE_BLOCKS = 5
# Relevance of the question's k-th hit is 1 / (1 + (k - 1) / RANK_SCALE); a probe's hits
# count PROBE_WEIGHT of that, neighbours NEIGHBOUR_WEIGHT of the hit they hang off.
RANK_SCALE = 5.0
PROBE_WEIGHT = 0.5
NEIGHBOUR_WEIGHT = 0.3
# How a memory's relevance from several queries combines: "max", or "sum" (multi-query
# reciprocal-rank fusion: it reordered the first pass and cost LongMemEval answers).
FUSE = "max"
# Evidence whose neighbours (graph, thread) a probe cycle looks up.
EXPAND = 3
# The gate looks at this many of the best items.
GATE_K = 5
# A fused lead this large ((s1 - s2) / |s1|) passes the gate with one word uncovered.
GATE_MARGIN = 0.25
# Weight of newly covered aspects in the final selection (share of all aspects).
COVER_WEIGHT = 0.5
# A summary's relevance counts this much in the final selection (a pointer to its members,
# which a probe cycle brings in, more than evidence itself); its members join the pool at
# NEIGHBOUR_WEIGHT of it.
SUMMARY_WEIGHT = 0.5
# Which later finds (probes, neighbours) may compete for a place: "any", or "gaps" (only
# those covering an aspect the first pass's top_k left uncovered; the rest count
# LATE_FACTOR of their relevance).
ADMIT = "gaps"
LATE_FACTOR = 0.3
# Heuristic probes made of parts of the question (see ``aspects.probes``): they only
# reorder what the question finds, and cost more than they gave (module docstring).
SUBSET_PROBES = False
# Evidence items shown to the LLM.
LLM_EVIDENCE = 12


@dataclass(frozen=True)
class Spend:
    """The budget one ask runs under."""

    max_cycles: int
    max_llm_calls: int
    max_tokens: int
    deadline_ms: int


@dataclass(frozen=True)
class Caps:
    """The most a request may ask for (the tenant's caps, else the server's)."""

    cycles: int
    llm_calls: int
    tokens: int
    deadline_ms: int

    @classmethod
    def of(cls, limits: EffectiveLimits) -> Caps:
        return cls(
            limits.ask_max_cycles,
            limits.ask_max_llm_calls,
            limits.ask_max_tokens,
            limits.ask_deadline_ms,
        )


def spend_for(budget: AskBudget | None, defaults: AskSettings, caps: Caps) -> Spend:
    """The request's budget, its gaps filled from the server's defaults (themselves held
    under the caps); a value above its cap is refused (422), never silently lowered."""
    b = budget or AskBudget()
    asked = {
        "max_cycles": (b.max_cycles, defaults.max_cycles, caps.cycles),
        "max_llm_calls": (b.max_llm_calls, defaults.max_llm_calls, caps.llm_calls),
        "max_tokens": (b.max_tokens, defaults.max_tokens, caps.tokens),
        "deadline_ms": (b.deadline_ms, defaults.deadline_ms, caps.deadline_ms),
    }
    out: dict[str, int] = {}
    for name, (value, default, cap) in asked.items():
        if value is not None and value > cap:
            raise ValidationFailed(
                f"budget.{name} may be at most {cap}",
                detail={"field": f"budget.{name}", "cap": cap},
            )
        out[name] = value if value is not None else min(default, cap)
    return Spend(**out)


@dataclass
class Found:
    """One item of the evidence pool."""

    id: uuid.UUID
    rel: float
    found_by: str
    cycle: int
    # Index text (content, speaker, date, context): what coverage reads.
    text: str = ""
    content: str = ""
    layer: str = "semantic"
    summary: bool = False
    occurred_at: datetime | None = None
    created_at: datetime | None = None
    thread: context.Thread | None = None
    covers: frozenset[str] = frozenset()


class _Deadline(Exception):
    """The ask's deadline passed."""


@dataclass
class Asker:
    """One ask: its pool, its trace, what it has spent."""

    session: AsyncSession
    runtime: ModelRuntime
    settings: Settings
    llm: LLM | None
    tenant_id: uuid.UUID
    cube_id: uuid.UUID
    request: AskRequest
    spend: Spend
    emit: Emit | None = None
    steps: list[TraceStep] = field(default_factory=list)
    pool: dict[uuid.UUID, Found] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.perf_counter)
    cycle: int = 0
    margin: float = 0.0
    base: Select[tuple[uuid.UUID]] | None = None
    # The aspects the first pass's top_k left uncovered.
    gaps0: frozenset[str] = frozenset()
    # The asked scope's core blocks (``ingest``'s profiles), answered first.
    core: list[MemoryRead] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.now = self.request.now or datetime.now(UTC)
        self.aspects = aspects.of_question(self.request.question, self.now)
        self.preset, self.config = presets.resolve(None, None)
        # Every layer: summaries too (plain search leaves them out), unless the request's
        # own filters name kinds.
        f = self.request.filters or SearchFilters()
        self.filters = f if f.kinds else f.model_copy(update={"include_summaries": True})

    # -- bookkeeping ---------------------------------------------------------------------

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def left_s(self) -> float:
        return (self.spend.deadline_ms - self.elapsed_ms()) / 1000

    def check_deadline(self) -> None:
        if self.left_s() <= 0:
            raise _Deadline

    async def step(self, kind: str, t0: float, **fields: object) -> None:
        step = TraceStep.model_validate(
            {
                "kind": kind,
                "cycle": self.cycle,
                "at_ms": round(self.elapsed_ms(), 2),
                "took_ms": round((time.perf_counter() - t0) * 1000, 2),
                **fields,
            }
        )
        self.steps.append(step)
        if self.emit is not None:
            await self.emit(step)

    @property
    def tokens(self) -> int:
        return self.usage.prompt_tokens + self.usage.completion_tokens

    # -- retrieval -----------------------------------------------------------------------

    async def retrieve(self, queries: Sequence[str], weight: float) -> list[uuid.UUID]:
        """Search each query; fold its hits into the pool. The ids new to the pool."""
        vecs = await self.runtime.embed_queries(list(queries))
        new: list[uuid.UUID] = []
        for q, vec in zip(queries, vecs, strict=True):
            self.check_deadline()
            req = SearchRequest(query=q, top_k=DEPTH, filters=self.filters, now=self.request.now)
            ranking = await rank(
                self.session,
                tenant_id=self.tenant_id,
                cube_id=self.cube_id,
                request=req,
                config=self.config,
                query_vec=vec,
                exact_threshold=self.settings.exact_search_threshold,
            )
            if self.base is None:
                self.base = ranking.scope.base
                fused = ranking.fused
                if len(fused) >= 2 and fused[0][1] > 0:
                    self.margin = (fused[0][1] - fused[1][1]) / abs(fused[0][1])
                elif len(fused) == 1:
                    self.margin = 1.0
            self.queries.append(q)
            for k, (mid, _) in enumerate(ranking.fused[:DEPTH]):
                rel = weight / (1 + k / RANK_SCALE)
                new += self._offer(mid, rel, q, add=FUSE == "sum")
        await self._load(new)
        return new

    def _offer(self, mid: uuid.UUID, rel: float, by: str, add: bool = False) -> list[uuid.UUID]:
        have = self.pool.get(mid)
        if have is None:
            self.pool[mid] = Found(id=mid, rel=rel, found_by=by, cycle=self.cycle)
            return [mid]
        have.rel = have.rel + rel if add else max(have.rel, rel)
        return []

    async def _load(self, ids: Sequence[uuid.UUID]) -> None:
        """What coverage and expansion need of new pool items, in one query."""
        if not ids:
            return
        rows = await self.session.execute(
            select(
                Memory.id,
                Memory.index_text,
                Memory.content,
                Memory.layer,
                Memory.kind,
                Memory.occurred_at,
                Memory.created_at,
                Memory.session_id,
                Memory.user_id,
                Memory.agent_id,
            ).where(Memory.id.in_(list(ids)))
        )
        for r in rows:
            f = self.pool[r.id]
            f.text, f.content = r.index_text or r.content, r.content
            f.layer, f.summary = r.layer, r.kind == SUMMARY_KIND
            f.occurred_at, f.created_at = r.occurred_at, r.created_at
            f.thread = context.thread_of(
                session_id=r.session_id,
                occurred_at=r.occurred_at,
                user_id=r.user_id,
                agent_id=r.agent_id,
            )
            f.covers = aspects.coverage(self.aspects, f.text, f.occurred_at)

    async def neighbours(self, items: Sequence[Found]) -> list[uuid.UUID]:
        """Graph neighbours and thread neighbours (the turn before, the two after) of
        ``items``, within the ask's scope, folded into the pool."""
        if self.base is None or not items:
            return []
        in_scope = Memory.id.in_(self.base)
        ids = [f.id for f in items]
        found: list[tuple[uuid.UUID, float, str]] = []
        links = await self.session.execute(
            select(Link.source_id, Link.target_id).where(
                Link.status == "active",
                or_(Link.source_id.in_(ids), Link.target_id.in_(ids)),
            )
        )
        rel_of = {f.id: f.rel for f in items}
        pairs = [(s, t) for s, t in links]
        cand = {t if s in rel_of else s: rel_of.get(s, rel_of.get(t, 0.0)) for s, t in pairs}
        if cand:
            ok = await self._in_scope(cand)
            found += [(m, r, "graph") for m, r in cand.items() if m in ok]
        for f in items:
            if f.thread is None or f.created_at is None:
                continue
            same = [Memory.cube_id == self.cube_id, *context.in_thread(f.thread), in_scope]
            after = select(Memory.id).where(*same, Memory.created_at > f.created_at)
            before = select(Memory.id).where(*same, Memory.created_at < f.created_at)
            nxt = await self.session.execute(after.order_by(Memory.created_at).limit(2))
            prv = await self.session.execute(before.order_by(Memory.created_at.desc()).limit(1))
            found += [(m, f.rel, "thread") for m in [*nxt.scalars(), *prv.scalars()]]
        found += await self._episodes(items)
        new: list[uuid.UUID] = []
        for mid, rel, how in found:
            new += self._offer(mid, rel * NEIGHBOUR_WEIGHT, how)
        await self._load(new)
        return new

    async def _in_scope(self, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``ids`` the ask may return (its tenant, cube, filters)."""
        assert self.base is not None
        stmt = select(Memory.id).where(Memory.id.in_(list(ids)), Memory.id.in_(self.base))
        return set((await self.session.execute(stmt)).scalars())

    async def _episodes(self, items: Sequence[Found]) -> list[tuple[uuid.UUID, float, str]]:
        """The members of the summaries among ``items`` (what a summary points at)."""
        summary_ids = [f.id for f in items if f.summary]
        if not summary_ids:
            return []
        by_summary = await summaries.members(self.session, summary_ids)
        ok = await self._in_scope({m for ms in by_summary.values() for m in ms})
        rel_of = {f.id: f.rel for f in items}
        return [
            (m, rel_of[sid], "summary") for sid, ms in by_summary.items() for m in ms if m in ok
        ]

    async def rerank(self, k: int = DEPTH) -> bool:
        """Reorder the pool's best ``k`` by the cross-encoder, when one is configured."""
        top = self.best(k)
        if len(top) < 2:
            return False
        scores = await self.runtime.rerank(self.request.question, [f.content for f in top])
        if scores is None:
            return False
        order = sorted(range(len(top)), key=lambda i: (-float(scores[i]), str(top[i].id)))
        for k_, i in enumerate(order):
            top[i].rel = 1 / (1 + k_ / RANK_SCALE)
        return True

    # -- judging -------------------------------------------------------------------------

    def best(self, k: int) -> list[Found]:
        return sorted(self.pool.values(), key=lambda f: (-f.rel, str(f.id)))[:k]

    def chosen(self, k: int) -> list[tuple[Found, float, list[str]]]:
        """``k`` items chosen for relevance and for covering what the others do not."""
        ranked = [
            (str(f.id), self._weight(f), f.covers)
            for f in sorted(self.pool.values(), key=lambda f: (-self._weight(f), str(f.id)))
        ]
        picks = aspects.select(ranked, k, weight=COVER_WEIGHT, total=len(self.aspects.labels))
        return [(self.pool[uuid.UUID(key)], gain, new) for key, gain, new in picks]

    def _weight(self, f: Found) -> float:
        """An item's relevance as the selection sees it."""
        w = f.rel * (SUMMARY_WEIGHT if f.summary else 1.0)
        if ADMIT == "gaps" and f.cycle > 0 and not (f.covers & self.gaps0):
            w *= LATE_FACTOR
        return w

    async def gate(self) -> bool:
        """Whether the evidence so far covers the question (recorded as a step)."""
        t0 = time.perf_counter()
        top = [f for f, _, _ in self.chosen(GATE_K)]
        gaps = aspects.missing(self.aspects, [f.covers for f in top])
        words = sum(1 for label in self.aspects.labels if label.startswith("word:"))
        ok = not gaps or (
            len(gaps) == 1
            and gaps[0].startswith("word:")
            and words >= 4
            and self.margin >= GATE_MARGIN
        )
        have = [label for label in self.aspects.labels if label not in gaps]
        await self.step(
            "gate",
            t0,
            decision="sufficient" if ok else "insufficient",
            covered=have,
            missing=gaps,
            note=f"margin {self.margin:.2f}",
        )
        return ok

    # -- the LLM -------------------------------------------------------------------------

    def llm_context(self, may_probe: bool, cues: list[str]) -> tuple[AskAnswerContext, list[Found]]:
        items = [f for f, _, _ in self.chosen(LLM_EVIDENCE)]
        ev = [
            AskEvidenceItem(
                n=i,
                text=" ".join(f.content.split()[:EVIDENCE_WORDS]),
                date=f.occurred_at.date().isoformat() if f.occurred_at else None,
                layer=f.layer,
            )
            for i, f in enumerate(items, 1)
        ]
        ctx = AskAnswerContext(
            core=[ln for c in self.core for ln in c.content.splitlines() if ln.strip()],
            question=self.request.question,
            now=self.request.now.date().isoformat() if self.request.now else None,
            evidence=ev,
            cues=cues,
            may_probe=may_probe,
        )
        return ctx, items

    async def tier1(
        self, may_probe: bool, cues: list[str]
    ) -> tuple[AskAnswerResponse | None, list[Found]]:
        """One structured LLM call; None (and an ``error`` step) when it failed."""
        assert self.llm is not None
        ctx, items = self.llm_context(may_probe, cues)
        t0 = time.perf_counter()
        before = self.tokens
        try:
            async with asyncio.timeout(max(self.left_s(), 0.001)):
                reply = await self.llm.run(
                    ASK_ANSWER, ctx, usage=self.usage, check=check_answer(len(items))
                )
        except TimeoutError as exc:
            await self.step(
                "llm",
                t0,
                decision="failed",
                prompt=ASK_ANSWER.id,
                model=self.llm.model,
                tokens=self.tokens - before,
                error="deadline passed during the LLM call",
            )
            raise _Deadline from exc
        except LLMError as exc:
            await self.step(
                "llm",
                t0,
                decision="failed",
                prompt=ASK_ANSWER.id,
                model=self.llm.model,
                tokens=self.tokens - before,
                error=f"{exc.code}: {exc}",
            )
            return None, items
        await self.step(
            "llm",
            t0,
            decision="answered" if reply.answer else "probes",
            prompt=ASK_ANSWER.id,
            model=self.llm.model,
            tokens=self.tokens - before,
            queries=reply.probes or None,
            found=[items[u - 1].id for u in reply.used] or None,
        )
        return reply, items

    def llm_affordable(self) -> bool:
        return self.usage.calls < self.spend.max_llm_calls and self.tokens < self.spend.max_tokens


Mode = Literal["heuristic", "llm"]


def mode_of(request: AskRequest, llm: LLM | None) -> Mode:
    """``auto`` is LLM mode when an LLM is configured; ``llm`` without one is refused."""
    if request.mode == "llm" and llm is None:
        raise ValidationFailed(
            "mode llm needs an LLM: none is configured (MEMSVC_LLM__MODEL)",
            detail={"field": "mode"},
        )
    if request.mode == "heuristic" or llm is None:
        return "heuristic"
    return "llm"


async def ask(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    settings: Settings,
    llm: LLM | None,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    request: AskRequest,
    spend: Spend,
    trace_id: uuid.UUID,
    emit: Emit | None = None,
    usage: Usage | None = None,
) -> tuple[AskResponse, list[TraceStep]]:
    """Run the loop (module docstring): the answer and evidence, and the trace's steps."""
    mode = mode_of(request, llm)
    a = Asker(
        session=session,
        runtime=runtime,
        settings=settings,
        llm=llm if mode == "llm" else None,
        tenant_id=tenant_id,
        cube_id=cube_id,
        request=request,
        spend=spend,
        emit=emit,
        usage=usage or Usage(),
    )
    f = request.filters
    scoped = f is not None and (f.user_id is not None or f.agent_id is not None)
    core_rows = await ingest_store.core_blocks(
        session,
        tenant_id=tenant_id,
        cube_id=cube_id,
        user_id=f.user_id if f is not None else None,
        agent_id=f.agent_id if f is not None else None,
        scoped=scoped,
    )
    a.core = await store.read_many(session, core_rows[:CORE_BLOCKS])
    answer: str | None = None
    cues: list[str] = []
    cited: list[uuid.UUID] = []
    stopped: Literal["budget", "deadline"] | None = None
    try:
        t0 = time.perf_counter()
        found = await a.retrieve([request.question], 1.0)
        reranked = await a.rerank()
        a.gaps0 = frozenset(aspects.missing(a.aspects, [f.covers for f in a.best(request.top_k)]))
        await a.step(
            "retrieve",
            t0,
            queries=[request.question],
            found=[f.id for f in a.best(DEPTH)],
            new=len(found),
            note="reranked by the cross-encoder" if reranked else None,
        )
        sufficient = await a.gate()
        while True:
            if a.llm is not None:
                if not a.llm_affordable():
                    stopped = "budget"
                    break
                reply, shown = await a.tier1(a.cycle < spend.max_cycles, cues)
                if reply is None:
                    break
                cues = list(dict.fromkeys([*cues, *reply.cues]))[:20]
                if reply.answer:
                    answer = reply.answer
                    cited = [shown[u - 1].id for u in reply.used]
                    break
                probes = [p for p in reply.probes if p.lower() not in map(str.lower, a.queries)]
                if not probes and sufficient:
                    break
            elif sufficient:
                break
            else:
                probes = []
            if a.cycle >= spend.max_cycles:
                stopped = "budget"
                break
            a.check_deadline()
            a.cycle += 1
            await probe_cycle(a, probes[:3])
            sufficient = await a.gate()
    except _Deadline:
        stopped = "deadline"
        await a.step("stop", time.perf_counter(), decision="deadline")
    if stopped == "budget":
        await a.step("stop", time.perf_counter(), decision="budget")
    return await finish(a, mode, answer, cues, cited, stopped, trace_id), a.steps


async def probe_cycle(a: Asker, llm_probes: list[str]) -> None:
    """One probe cycle: the LLM's probes (if any) and heuristic ones, then neighbours."""
    t0 = time.perf_counter()
    top = [f for f, _, _ in a.chosen(GATE_K)]
    gaps = aspects.missing(a.aspects, [f.covers for f in top])
    heur = aspects.probes(
        a.aspects,
        a.request.question,
        gaps,
        [f.text for f in top[:EXPAND]],
        subsets=SUBSET_PROBES,
    )
    seen = {q.lower() for q in a.queries}
    queries = [q for q in dict.fromkeys([*llm_probes, *heur]) if q.lower() not in seen][:4]
    found = await a.retrieve(queries, PROBE_WEIGHT) if queries else []
    await a.step("probe", t0, queries=queries, found=found[:DEPTH], new=len(found))
    t1 = time.perf_counter()
    near = await a.neighbours(a.best(EXPAND))
    await a.step("fold", t1, found=near or None, new=len(near), note="graph and thread neighbours")


async def finish(
    a: Asker,
    mode: Mode,
    answer: str | None,
    cues: list[str],
    cited: list[uuid.UUID],
    stopped: Literal["budget", "deadline"] | None,
    trace_id: uuid.UUID,
) -> AskResponse:
    """Choose the evidence (cited first), load it, and build the response."""
    t0 = time.perf_counter()
    k = a.request.top_k
    picks = a.chosen(k)
    by_id = {f.id: (f, gain, new) for f, gain, new in picks}
    for mid in cited:  # what the answer cites is evidence even if the greedy pass left it
        if mid not in by_id and mid in a.pool:
            by_id[mid] = (a.pool[mid], a.pool[mid].rel, [])
    order = list(dict.fromkeys([*cited, *(f.id for f, _, _ in picks)]))[:k]
    rows = {
        m.id: m
        for m in (await a.session.execute(select(Memory).where(Memory.id.in_(order)))).scalars()
    }
    kept = [mid for mid in order if mid in rows]
    reads = await store.read_many(a.session, [rows[mid] for mid in kept])
    evidence = []
    for read in reads:
        f, gain, new = by_id[read.id]
        why = [f"found by {f.found_by!r} in cycle {f.cycle}"]
        if read.id in cited:
            why.append("cited by the answer")
        if new:
            why.append("covers " + ", ".join(new))
        evidence.append(
            Evidence(memory=read, score=round(gain, 4), found_by=f.found_by, cycle=f.cycle, why=why)
        )
    if not cues and mode == "heuristic":
        cues = [
            f"{e.memory.content[:160]}" for e in evidence[:3] if any("covers" in w for w in e.why)
        ]
    await a.step(
        "select",
        t0,
        found=[e.memory.id for e in evidence],
        covered=sorted({c for f, _, _ in picks for c in f.covers}),
    )
    return AskResponse(
        answer=answer,
        core=a.core,
        evidence=evidence,
        cues=cues,
        mode=mode,
        cycles=a.cycle,
        llm_calls=a.usage.calls,
        tokens=a.tokens,
        stopped=stopped,
        took_ms=round(a.elapsed_ms(), 2),
        trace_id=trace_id,
    )


__all__ = ["Asker", "Caps", "Spend", "ask", "mode_of", "spend_for"]
