"""The job worker: claims jobs, runs their handlers, retries with backoff, parks dead letters.

One :class:`Worker` runs as asyncio tasks in the app's event loop (``memsvc serve``, the
in-process default) or in its own process (``memsvc worker``, :func:`run_worker_forever`);
any number may share one database (see :mod:`memsvc.jobs.queue`). While a job runs its
lock is refreshed (heartbeat), so ``lock_timeout_s`` only has to outlast a dead worker,
not the slowest job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from memsvc.config import Settings
from memsvc.jobs import queue
from memsvc.jobs.handlers import JobContext, JobHandler, default_handlers
from memsvc.jobs.queue import ClaimedJob
from memsvc.llm import LLM, Usage, build_llm
from memsvc.logs import safe_error
from memsvc.store.db import Database, is_outage

if TYPE_CHECKING:
    from memsvc.runtime import ModelRuntime

log = logging.getLogger("memsvc.jobs")

JOBS = Counter("memsvc_jobs_total", "Job tries by outcome", ["kind", "outcome"])
JOB_SECONDS = Histogram(
    "memsvc_job_seconds",
    "Job run time",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
JOB_LLM_CALLS = Counter("memsvc_job_llm_calls_total", "LLM calls made by jobs", ["kind"])
JOB_LLM_TOKENS = Counter(
    "memsvc_job_llm_tokens_total", "LLM tokens used by jobs", ["kind", "direction"]
)

_UNSET: LLM | None = object()  # type: ignore[assignment]


class Worker:
    """Runs queued jobs; ``start``/``stop`` around the app, ``run_until_idle`` in tests."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        runtime: ModelRuntime | None = None,
        llm: LLM | None = _UNSET,
        handlers: Mapping[str, JobHandler] | None = None,
        worker_id: str | None = None,
        concurrency: int = 1,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.db = db
        self.settings = settings
        self.runtime = runtime
        self.llm = build_llm(settings.llm) if llm is _UNSET else llm
        # Kinds that need the models are left to workers that have them loaded.
        self.handlers = {
            kind: h
            for kind, h in (handlers if handlers is not None else default_handlers()).items()
            if runtime is not None or not h.needs_runtime
        }
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = max(concurrency, 1)
        self.stop_timeout_s = stop_timeout_s
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_stale_check = 0.0
        # Pruning waits one interval after start (several workers start together).
        self._last_prune = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling in the running event loop."""
        if self._tasks:
            return
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"memsvc-worker-{i}")
            for i in range(self.concurrency)
        ]
        log.info("worker %s started (%d task(s))", self.worker_id, self.concurrency)

    async def stop(self) -> None:
        """Finish the jobs in flight (up to ``stop_timeout_s``), then stop; others stay queued."""
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.stop_timeout_s)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending)
        log.info("worker %s stopped", self.worker_id)

    async def run_until_idle(self, max_jobs: int | None = None) -> int:
        """Run ready jobs one by one until none is ready (tests, scripts); returns how many."""
        await self.requeue_stale()
        n = 0
        while max_jobs is None or n < max_jobs:
            if not await self.run_one():
                break
            n += 1
        return n

    # -- one job ---------------------------------------------------------------------------

    async def run_one(self) -> bool:
        """Claim and run one ready job; False when there was none."""
        async with self.db.transaction() as s:
            claimed = await queue.claim(s, worker_id=self.worker_id, kinds=list(self.handlers))
        if not claimed:
            return False
        await self._run(claimed[0])
        return True

    async def prune(self) -> int:
        """Delete finished jobs past their retention (``jobs.done_retention_days``)."""
        self._last_prune = time.monotonic()
        days = self.settings.jobs.done_retention_days
        if days <= 0:
            return 0
        total = 0
        while True:
            async with self.db.transaction() as s:
                n = await queue.prune_done(s, older_than_s=days * 86400)
            total += n
            if n < queue.PRUNE_BATCH:
                break
        if total:
            log.info("worker %s: pruned %d finished job(s)", self.worker_id, total)
        return total

    async def requeue_stale(self) -> int:
        """Re-queue jobs of dead workers (lock older than ``lock_timeout_s``)."""
        self._last_stale_check = time.monotonic()
        async with self.db.transaction() as s:
            parked = await queue.requeue_stale(s, lock_timeout_s=self.settings.jobs.lock_timeout_s)
        for job in parked:
            JOBS.labels(job.kind, "dead").inc()
            await self._on_dead(job)
        return len(parked)

    def _context(self, usage: Usage) -> JobContext:
        return JobContext(
            db=self.db,
            settings=self.settings,
            runtime=self.runtime,
            llm=self.llm,
            usage=usage,
            worker_id=self.worker_id,
        )

    async def _heartbeat(self, job: ClaimedJob) -> None:
        interval = max(self.settings.jobs.lock_timeout_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            async with self.db.transaction() as s:
                held = await queue.heartbeat(s, job_id=job.id, worker_id=self.worker_id)
            if not held:
                log.warning("job %s: lock lost to a re-queue; finishing anyway", job.id)
                return

    async def _run(self, job: ClaimedJob) -> None:
        usage = Usage()
        handler = self.handlers.get(job.kind)
        beat = asyncio.create_task(self._heartbeat(job))
        started = time.perf_counter()
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            result = await handler.run(self._context(usage), job)
        except asyncio.CancelledError:
            async with self.db.transaction() as s:
                await queue.release(s, job=job, worker_id=self.worker_id)
            raise
        except Exception as exc:
            if is_outage(exc):
                # The database went away mid-job: not the job's fault, so no try is spent.
                await self._give_back(job)
            else:
                # The job runner is a named boundary: record what failed, retry or park it.
                await self._failed(job, exc, usage)
        else:
            async with self.db.transaction() as s:
                held = await queue.complete(
                    s, job_id=job.id, worker_id=self.worker_id, result={**result, **usage.as_dict()}
                )
            JOBS.labels(job.kind, "done" if held else "lost").inc()
        finally:
            beat.cancel()
            JOB_SECONDS.labels(job.kind).observe(time.perf_counter() - started)
            self._count_usage(job.kind, usage)

    async def _failed(self, job: ClaimedJob, exc: Exception, usage: Usage) -> None:
        # The traceback goes to the server log; the tenant reads a class and a safe message.
        log.warning(
            "job %s (%s) try %d failed: %s",
            job.id,
            job.kind,
            job.attempts,
            safe_error(exc),
            exc_info=exc,
        )
        async with self.db.transaction() as s:
            status = await queue.fail(
                s,
                job=job,
                worker_id=self.worker_id,
                error=safe_error(exc),
                backoff_base_s=self.settings.jobs.backoff_base_s,
                result=usage.as_dict(),
            )
        JOBS.labels(job.kind, "dead" if status == "failed" else "retry").inc()
        if status == "failed":
            log.error("job %s (%s) parked as a dead letter", job.id, job.kind)
            await self._on_dead(job)

    async def wait_for_database(self, *, max_wait_s: float = 600.0) -> bool:
        """Poll until the database answers again (backing off to 5 s); False on stop/timeout."""
        delay = 0.2
        deadline = time.monotonic() + max_wait_s
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                await self.db.ping()
                return True
            except Exception as exc:
                log.debug("database still unavailable: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            delay = min(delay * 2, 5.0)
        return False

    async def _give_back(self, job: ClaimedJob) -> None:
        """Release a job interrupted by a database outage without counting the try; if the
        database stays away the lock times out and ``requeue_stale`` gives it back."""
        log.warning("job %s (%s): database unavailable; giving the job back", job.id, job.kind)
        JOBS.labels(job.kind, "outage").inc()
        if not await self.wait_for_database():
            return
        try:
            async with self.db.transaction() as s:
                await queue.release(s, job=job, worker_id=self.worker_id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("job %s: could not give it back yet (database down)", job.id)

    async def _on_dead(self, job: ClaimedJob) -> None:
        handler = self.handlers.get(job.kind)
        if handler is None or handler.on_dead is None:
            return
        try:
            await handler.on_dead(self._context(Usage()), job)
        except Exception:
            log.exception("job %s: on_dead hook failed", job.id)

    @staticmethod
    def _count_usage(kind: str, usage: Usage) -> None:
        if usage.calls:
            JOB_LLM_CALLS.labels(kind).inc(usage.calls)
            JOB_LLM_TOKENS.labels(kind, "prompt").inc(usage.prompt_tokens)
            JOB_LLM_TOKENS.labels(kind, "completion").inc(usage.completion_tokens)

    # -- polling loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        poll = max(self.settings.jobs.poll_interval_s, 0.01)
        stale_every = max(min(self.settings.jobs.lock_timeout_s / 2, 30.0), poll)
        while not self._stopping.is_set():
            ran = False
            try:
                if time.monotonic() - self._last_stale_check >= stale_every:
                    await self.requeue_stale()
                if time.monotonic() - self._last_prune >= self.settings.jobs.prune_every_s:
                    await self.prune()
                ran = await self.run_one()
            except Exception as exc:
                if is_outage(exc):
                    # Database down: wait for it (backing off), then carry on by itself.
                    log.warning("worker %s: database unavailable; waiting", self.worker_id)
                    await self.wait_for_database()
                    continue
                # Keep the worker alive and try again later.
                log.exception("worker %s: poll failed", self.worker_id)
            if not ran:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=poll)


async def serve_worker(settings: Settings, *, concurrency: int = 1) -> int:
    """Run a worker process until SIGTERM/SIGINT (models loaded only if a job kind needs them)."""
    from memsvc.runtime import build_runtime
    from memsvc.store.db import migrate, resolve_url
    from memsvc.store.embedded import Supervisor

    url, server = await asyncio.to_thread(resolve_url, settings)
    await asyncio.to_thread(migrate, url)
    db = Database.connect(
        url,
        server=server,
        pool_size=concurrency + 2,
        hide_parameters=not settings.log.debug_content,
    )
    await db.warn_if_superuser()
    handlers = default_handlers()
    runtime = None
    if any(h.needs_runtime for h in handlers.values()):
        runtime = await asyncio.to_thread(build_runtime, settings.models)
    worker = Worker(db, settings, runtime=runtime, handlers=handlers, concurrency=concurrency)
    supervisor = Supervisor(server) if server is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if supervisor is not None:
            supervisor.start()
        await worker.start()
        mode = f"LLM {settings.llm.model}" if settings.llm.model else "heuristic"
        print(f"memsvc worker {worker.worker_id}: running ({mode} mode)", flush=True)
        await stop.wait()
        print("memsvc worker: stopping after the jobs in flight", flush=True)
        await worker.stop()
    finally:
        if supervisor is not None:
            await supervisor.stop()
        if runtime is not None:
            runtime.close()
        await db.close()
    return 0


def run_worker_forever(settings: Settings, *, concurrency: int = 1) -> int:
    """Entry point of ``memsvc worker``: its own event loop, until a signal stops it."""
    return asyncio.run(serve_worker(settings, concurrency=concurrency))
