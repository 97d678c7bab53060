"""The one entry point for a search request, shared by the API and the admin view."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc import timing
from memsvc.config import Settings
from memsvc.errors import ValidationFailed
from memsvc.llm import LLM, Usage
from memsvc.retrieval import ask, presets, ranker
from memsvc.retrieval.search import search
from memsvc.runtime import ModelRuntime
from memsvc.schemas import (
    AskRequest,
    AskResponse,
    EffectiveLimits,
    RetrievalConfig,
    SearchRequest,
    SearchResponse,
)
from memsvc.store import traces
from memsvc.store.caches import caches_of
from memsvc.store.db import Database
from memsvc.store.llm_usage import TenantBudget


def _check_top_k(top_k: int, settings: Settings) -> None:
    limit = settings.limits.max_top_k
    if top_k > limit:
        raise ValidationFailed(f"top_k may be at most {limit}", detail={"limit": limit})


@dataclass
class Planned:
    """A search checked and under way: its strategy, and its query's embedding started
    (``plan_search``) so the model runs while the request opens its transaction."""

    preset: str | None
    config: RetrievalConfig
    vector: asyncio.Task[np.ndarray] | None

    def cancel(self) -> None:
        """Drop the embedding if the search never needed it (a 404 cube, an error). One
        that failed meanwhile has its error taken: the request's own error is the one
        that matters, and asyncio would log this one as never retrieved."""
        if self.vector is None:
            return
        if not self.vector.done():
            self.vector.cancel()
        elif not self.vector.cancelled():
            self.vector.exception()


async def _embed(runtime: ModelRuntime, query: str) -> np.ndarray:
    with timing.phase("embed"):
        return await runtime.embed_query(query)


def plan_search(request: SearchRequest, *, runtime: ModelRuntime, settings: Settings) -> Planned:
    """Check a search's limits and strategy (a 4xx before any work) and start embedding its
    query. The caller must ``cancel`` it if the search does not run."""
    _check_top_k(request.top_k, settings)
    name, config = presets.resolve(request.preset, request.config)
    vector = None
    if config.vector is not None:
        vector = asyncio.ensure_future(_embed(runtime, request.query))
    return Planned(preset=name, config=config, vector=vector)


async def search_cube(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    settings: Settings,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    request: SearchRequest,
    db: Database | None = None,
    planned: Planned | None = None,
    vector_gen: int | None = None,
) -> SearchResponse:
    """Check limits, resolve the strategy, embed the query and run the search (``planned``:
    all but the search done or under way already). With ``db`` a large scope's stale
    lexicon is refreshed in the background, not by this search, and so is the copy of a
    cube's vectors kept for exact search at ``vector_gen`` (``CubeRef.vector_gen``)."""
    if planned is None:
        planned = plan_search(request, runtime=runtime, settings=settings)
    with caches_of(session).search_in_flight():
        try:
            vec = await planned.vector if planned.vector is not None else None
        finally:
            planned.cancel()
        config = planned.config
        return await search(
            session,
            tenant_id=tenant_id,
            cube_id=cube_id,
            request=request,
            config=config,
            preset=planned.preset,
            query_vec=vec,
            rerank=runtime.rerank if config.rerank else None,
            exact_threshold=settings.exact_search_threshold,
            reopen=(lambda: db.tenant_transaction(tenant_id)) if db is not None else None,
            vector_gen=vector_gen if db is not None else None,
            ranker=(
                ranker.load(
                    Path(settings.models.ranker) if settings.models.ranker else ranker.DEFAULT_MODEL
                )
                if config.ranker == "learned"
                else None
            ),
        )


def ask_plan(
    request: AskRequest, *, settings: Settings, limits: EffectiveLimits, llm: LLM | None
) -> ask.Spend:
    """Check an ask before it runs (a 4xx before any work, or any streamed byte): its mode
    against the configured LLM, its budget against the tenant's caps."""
    _check_top_k(request.top_k, settings)
    ask.mode_of(request, llm)
    return ask.spend_for(request.budget, settings.ask, ask.Caps.of(limits))


async def ask_cube(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    settings: Settings,
    llm: LLM | None,
    db: Database,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    request: AskRequest,
    spend: ask.Spend,
    emit: ask.Emit | None = None,
) -> AskResponse:
    """Run an ask (``memsvc.retrieval.ask``) and store its trace in the same transaction.
    Its LLM calls draw on the tenant's hourly LLM budget like enrichment's."""
    usage = Usage(budget=TenantBudget.of(db, tenant_id, settings.llm))
    trace_id = uuid.uuid4()
    response, steps = await ask.ask(
        session,
        runtime=runtime,
        settings=settings,
        llm=llm,
        tenant_id=tenant_id,
        cube_id=cube_id,
        request=request,
        spend=spend,
        trace_id=trace_id,
        emit=emit,
        usage=usage,
    )
    await traces.save(
        session,
        trace_id=trace_id,
        tenant_id=tenant_id,
        cube_id=cube_id,
        question=request.question,
        request=request.model_dump(mode="json", exclude_none=True),
        steps=steps,
        response=response,
        retention_days=settings.ask.trace_retention_days,
    )
    return response
