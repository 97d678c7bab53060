"""The Postgres queue and worker: exclusivity, backoff, dead letters, stale locks, heartbeat."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any

import pytest

from memsvc.config import JobSettings, Settings
from memsvc.jobs import queue
from memsvc.jobs.handlers import JobContext, JobHandler
from memsvc.jobs.queue import ClaimedJob
from memsvc.jobs.worker import Worker
from memsvc.store.db import Database
from tests.graph.helpers import sql

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    d = Database.connect(database_url)
    yield d
    await d.close()


def job_settings(settings: Settings, **jobs: Any) -> Settings:
    return settings.model_copy(update={"jobs": JobSettings(poll_interval_s=0.02, **jobs)})


async def enqueue(db: Database, n: int, *, kind: str = "probe", max_attempts: int = 5) -> None:
    async with db.transaction() as s:
        await queue.enqueue_many(
            s,
            kind=kind,
            payloads=[{"n": i} for i in range(n)],
            tenant_id=None,
            max_attempts=max_attempts,
        )


async def test_two_workers_never_take_the_same_job(
    database_url: str, settings: Settings, db: Database
) -> None:
    await enqueue(db, 60)
    runs: list[tuple[str, int]] = []

    async def probe(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
        runs.append((ctx.worker_id, job.id))
        await asyncio.sleep(0.005)
        return {"ok": True}

    cfg = job_settings(settings)
    dbs = [Database.connect(database_url) for _ in range(2)]
    workers = [
        Worker(
            d,
            cfg,
            llm=None,
            handlers={"probe": JobHandler(probe)},
            worker_id=f"w{i}",
            concurrency=3,
        )
        for i, d in enumerate(dbs)
    ]
    for w in workers:
        await w.start()
    try:
        for _ in range(500):
            async with db.transaction() as s:
                if (await queue.counts(s, tenant_id=None)).done == 60:
                    break
            await asyncio.sleep(0.02)
    finally:
        for w in workers:
            await w.stop()
        for d in dbs:
            await d.close()
    per_job = collections.Counter(job_id for _, job_id in runs)
    assert sorted(per_job) == list(range(1, 61))
    assert set(per_job.values()) == {1}
    assert {w for w, _ in runs} == {"w0", "w1"}
    assert sql(database_url, "SELECT DISTINCT status, attempts FROM job") == [("done", 1)]


async def test_failures_back_off_then_park_as_dead_letters(
    database_url: str, settings: Settings, db: Database
) -> None:
    await enqueue(db, 1, max_attempts=3)
    dead: list[int] = []

    async def boom(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
        raise RuntimeError(f"boom on try {job.attempts}")

    async def on_dead(ctx: JobContext, job: ClaimedJob) -> None:
        dead.append(job.id)

    handlers = {"probe": JobHandler(boom, on_dead)}
    slow = Worker(db, job_settings(settings, backoff_base_s=10.0), llm=None, handlers=handlers)
    assert await slow.run_until_idle() == 1  # the retry waits for its backoff
    [(status, attempts, delay, error)] = sql(
        database_url,
        "SELECT status, attempts, extract(epoch FROM run_after - now()), last_error FROM job",
    )
    assert (status, attempts) == ("queued", 1)
    assert 9.0 < float(delay) < 11.5
    assert error == "RuntimeError: boom on try 1"  # no traceback: the tenant reads it

    fast = Worker(db, job_settings(settings, backoff_base_s=0.0), llm=None, handlers=handlers)
    sql(database_url, "UPDATE job SET run_after = now()")
    assert await fast.run_until_idle() == 2
    [(status, attempts, error)] = sql(database_url, "SELECT status, attempts, last_error FROM job")
    assert (status, attempts) == ("failed", 3)
    assert error.startswith("RuntimeError: boom on try 3")
    assert dead == [1]


async def test_jobs_of_a_dead_worker_are_requeued_or_parked(
    database_url: str, settings: Settings, db: Database
) -> None:
    await enqueue(db, 2, max_attempts=2)
    async with db.transaction() as s:
        await queue.claim(s, worker_id="dead-worker", limit=2)
    # Job 2 was already on its last attempt when its worker died.
    sql(database_url, "UPDATE job SET locked_at = now() - interval '10 seconds'")
    sql(database_url, "UPDATE job SET attempts = 2 WHERE id = 2")
    ran: list[int] = []

    async def ok(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
        ran.append(job.id)
        return {}

    w = Worker(
        db, job_settings(settings, lock_timeout_s=1.0), llm=None, handlers={"probe": JobHandler(ok)}
    )
    assert await w.run_until_idle() == 1
    rows = sql(database_url, "SELECT id, status, attempts, last_error FROM job ORDER BY id")
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, "done", 2), (2, "failed", 2)]
    assert rows[1][3] == "worker dead-worker stopped while running the job (lock expired)"
    assert ran == [1]


async def test_a_slow_job_keeps_its_lock_by_heartbeat(
    database_url: str, settings: Settings, db: Database
) -> None:
    await enqueue(db, 1)
    cfg = job_settings(settings, lock_timeout_s=0.3)
    ran: list[int] = []

    async def slow(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
        ran.append(job.id)
        await asyncio.sleep(1.0)
        return {}

    handlers = {"probe": JobHandler(slow)}
    busy = Worker(db, cfg, llm=None, handlers=handlers, worker_id="busy")
    other = Worker(db, cfg, llm=None, handlers=handlers, worker_id="other")
    task = asyncio.create_task(busy.run_until_idle())
    for _ in range(8):
        await asyncio.sleep(0.12)
        assert await other.requeue_stale() == 0
        assert await other.run_one() is False
    await task
    assert ran == [1]
    assert sql(database_url, "SELECT status, attempts FROM job") == [("done", 1)]


async def test_unknown_kinds_are_left_for_workers_that_know_them(
    database_url: str, settings: Settings, db: Database
) -> None:
    await enqueue(db, 1, kind="someday")
    w = Worker(db, job_settings(settings), llm=None)
    assert await w.run_until_idle() == 0
    assert sql(database_url, "SELECT status FROM job") == [("queued",)]


async def test_finished_jobs_are_pruned_after_their_retention(
    database_url: str, settings: Settings, db: Database
) -> None:
    await enqueue(db, 3)
    await enqueue(db, 1, kind="broken", max_attempts=1)

    async def ok(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
        return {}

    async def boom(ctx: JobContext, job: ClaimedJob) -> dict[str, Any]:
        raise RuntimeError("always")

    handlers = {"probe": JobHandler(ok), "broken": JobHandler(boom)}
    w = Worker(db, job_settings(settings), llm=None, handlers=handlers)
    assert await w.run_until_idle() == 4
    await enqueue(db, 1, kind="later")  # queued, nobody runs it
    sql(database_url, "UPDATE job SET updated_at = now() - interval '8 days' WHERE id <> 1")

    keep_all = Worker(db, job_settings(settings, done_retention_days=0), llm=None, handlers={})
    assert await keep_all.prune() == 0
    # Job 1 finished just now; 2 and 3 eight days ago; the dead letter and the queued job stay.
    assert await w.prune() == 2
    rows = sql(database_url, "SELECT id, kind, status FROM job ORDER BY id")
    assert [tuple(r) for r in rows] == [
        (1, "probe", "done"),
        (4, "broken", "failed"),
        (5, "later", "queued"),
    ]
