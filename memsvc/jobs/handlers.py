"""Job kinds and what runs them. Every handler must be idempotent: a job killed half-way
is run again from the start, and must then complete without duplicating anything."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memsvc.config import Settings
from memsvc.graph import layers
from memsvc.graph.builders import builder_for
from memsvc.graph.enrich import enrich_memory
from memsvc.graph.summarise import Summariser
from memsvc.jobs.queue import ClaimedJob
from memsvc.llm import LLM, Usage
from memsvc.policy import ingest
from memsvc.store import ann, notes, summaries
from memsvc.store.db import Database
from memsvc.store.llm_usage import TenantBudget

if TYPE_CHECKING:
    from memsvc.runtime import ModelRuntime


@dataclass
class JobContext:
    """What a handler may use; ``usage`` collects the job's LLM calls and tokens."""

    db: Database
    settings: Settings
    runtime: ModelRuntime | None
    llm: LLM | None
    usage: Usage
    worker_id: str


Run = Callable[[JobContext, ClaimedJob], Awaitable[dict[str, Any]]]
OnDead = Callable[[JobContext, ClaimedJob], Awaitable[None]]


@dataclass(frozen=True)
class JobHandler:
    """How to run one kind of job, and what to record when it is parked as a dead letter."""

    run: Run
    on_dead: OnDead | None = None
    # Whether ``ctx.runtime`` (embedder/reranker) must be loaded to run it. Enrichment
    # works on stored embeddings, so ``memsvc worker`` processes skip loading torch.
    needs_runtime: bool = False


def _budget(ctx: JobContext, tenant_id: uuid.UUID) -> None:
    """A job's LLM calls draw on its tenant's hourly budget (with an LLM configured)."""
    if ctx.llm is not None:
        ctx.usage.budget = TenantBudget.of(ctx.db, tenant_id, ctx.settings.llm)


def _memory_ref(job: ClaimedJob) -> tuple[uuid.UUID, uuid.UUID]:
    if job.tenant_id is None:
        raise ValueError("enrich job has no tenant")
    return job.tenant_id, uuid.UUID(str(job.payload["memory_id"]))


async def run_enrich(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
    """A-MEM enrichment of the memory named in the payload."""
    tenant_id, memory_id = _memory_ref(job)
    _budget(ctx, tenant_id)
    result = await enrich_memory(
        ctx.db,
        tenant_id=tenant_id,
        memory_id=memory_id,
        builder=builder_for(ctx.llm),
        usage=ctx.usage,
        job_id=job.id,
    )
    return result.as_dict()


async def enrich_dead(ctx: JobContext, job: ClaimedJob) -> None:
    """A parked enrichment shows on the memory as ``enrichment_status: failed``."""
    tenant_id, memory_id = _memory_ref(job)
    async with ctx.db.transaction() as s:
        await notes.set_enrichment_status(
            s, tenant_id=tenant_id, memory_id=memory_id, status="failed"
        )


async def run_ann_index(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
    """Promote a large cube to the HNSW index, or fold a promoted cube's unflagged memories
    into it (see ``memsvc.store.ann``): mark the cube, then flag its unflagged memories,
    then their unflagged passages, batch by batch (each batch its own transaction, so a
    killed job resumes where it stopped). The result says how many and how long
    (``bench/load.py`` counts it)."""
    if job.tenant_id is None:
        raise ValueError("ann_index job has no tenant")
    cube_id = uuid.UUID(str(job.payload["cube_id"]))
    started = time.perf_counter()
    async with ctx.db.transaction() as s:
        if not await ann.mark_cube(s, tenant_id=job.tenant_id, cube_id=cube_id):
            return {"indexed": 0, "cube": "gone"}
    counts: dict[str, int] = {}
    # The memories, then the passages of the memories now in the index.
    for name, flag in (("indexed", ann.flag_batch), ("passages", ann.flag_passages)):
        counts[name] = 0
        while True:
            async with ctx.db.transaction() as s:
                n = await flag(s, tenant_id=job.tenant_id, cube_id=cube_id)
            counts[name] += n
            if n == 0:
                break
    return {**counts, "seconds": round(time.perf_counter() - started, 3)}


async def run_summarise(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
    """Bring the summaries of one scope of a cube up to date (``memsvc.graph.layers``): a
    thread's episodic windows, or the cube's semantic clusters."""
    if job.tenant_id is None:
        raise ValueError("summarise job has no tenant")
    if ctx.runtime is None:
        raise RuntimeError("summarise jobs need the embedder (a worker with models loaded)")
    _budget(ctx, job.tenant_id)
    runtime = ctx.runtime
    out = await layers.summarise(
        ctx.db,
        tenant_id=job.tenant_id,
        cube_id=uuid.UUID(str(job.payload["cube_id"])),
        scope=str(job.payload["scope"]),
        summariser=Summariser(ctx.llm),
        embed=runtime.embed,
        embedding_model=runtime.embedder.model_name,
        usage=ctx.usage,
    )
    return out.as_dict()


async def run_ingest(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
    """A queued ``ingest`` request (``"async": true``), in one tenant transaction."""
    if job.tenant_id is None:
        raise ValueError("ingest job has no tenant")
    if ctx.runtime is None:
        raise RuntimeError("ingest jobs need the embedder (a worker with models loaded)")
    _budget(ctx, job.tenant_id)
    async with ctx.db.tenant_transaction(job.tenant_id) as s:
        return await ingest.run_queued(
            s,
            runtime=ctx.runtime,
            llm=ctx.llm,
            settings=ctx.settings,
            tenant_id=job.tenant_id,
            payload=job.payload,
        )


def default_handlers() -> dict[str, JobHandler]:
    """The job kinds the service enqueues."""
    return {
        "enrich": JobHandler(run=run_enrich, on_dead=enrich_dead),
        ann.JOB_KIND: JobHandler(run=run_ann_index),
        summaries.JOB_KIND: JobHandler(run=run_summarise, needs_runtime=True),
        ingest.JOB_KIND: JobHandler(run=run_ingest, needs_runtime=True),
    }
