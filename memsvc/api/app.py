"""The app factory: ``create_app(settings)`` builds everything on demand, nothing at import."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from memsvc import __version__
from memsvc.api import errors, faults, openapi
from memsvc.api.mcp_mount import mount_mcp
from memsvc.api.middleware import BodyLimit, CatchAll, CleanURL, Metrics
from memsvc.api.routes import (
    admin,
    ask,
    cubes,
    graph,
    health,
    ingest,
    jobs,
    memories,
    search,
    transfer,
)
from memsvc.api.timeouts import Timeouts
from memsvc.config import Settings
from memsvc.llm import build_llm
from memsvc.runtime import ModelRuntime, build_runtime
from memsvc.schemas import KeyCreated
from memsvc.state import AppState, KeyCache
from memsvc.store import tenants
from memsvc.store.db import Database, migrate, resolve_url
from memsvc.store.embedded import Supervisor
from memsvc.store.planner_stats import StatsKeeper
from memsvc.store.vector_cache import VectorCache, single_threaded_blas
from memsvc.web import build_router as build_admin_router

log = logging.getLogger("memsvc")

# Hooks that start and stop optional parts (the job worker, ...) with the app.
Hook = Callable[[AppState], Awaitable[None]]


def write_admin_key(data_dir: Path, created: KeyCreated, *, echo: bool) -> Path:
    """Store the first (operator) key in ``<data dir>/admin.key`` (mode 600) and print it once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "admin.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(created.key + "\n")
    os.chmod(path, 0o600)
    if echo:
        print(f"memsvc: created tenant 'default' and operator key {created.key}", flush=True)
        print(f"memsvc: the key is also in {path} (mode 600); it is not shown again", flush=True)
    return path


async def open_state(settings: Settings, *, runtime: ModelRuntime | None = None) -> AppState:
    """Start or attach to Postgres, migrate, bootstrap, and load the models."""
    url, server = await asyncio.to_thread(resolve_url, settings)
    await asyncio.to_thread(migrate, url)
    db = Database.connect(url, server=server, hide_parameters=not settings.log.debug_content)
    db.caches.vectors = VectorCache(
        max_bytes=settings.vector_cache_mb * 1024 * 1024, min_vectors=settings.vector_cache_min
    )
    if db.caches.vectors.enabled:
        single_threaded_blas()
    await db.detect_rls()
    await db.warn_if_superuser()
    async with db.transaction() as session:
        created = await tenants.bootstrap(session)
    if created is not None:
        write_admin_key(settings.data_dir, created, echo=settings.print_admin_key)
    if runtime is None:
        runtime = await asyncio.to_thread(build_runtime, settings.models)
    state = AppState(
        settings=settings, db=db, runtime=runtime, keys=KeyCache(db), llm=build_llm(settings.llm)
    )
    state.ready = True
    return state


def create_app(
    settings: Settings,
    *,
    runtime: ModelRuntime | None = None,
    on_start: tuple[Hook, ...] = (),
    on_stop: tuple[Hook, ...] = (),
) -> FastAPI:
    """The memsvc ASGI app; pass ``runtime`` to share loaded models (tests, benchmarks)."""
    owns_runtime = runtime is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await open_state(settings, runtime=runtime)
        app.state.memsvc = state
        supervisor = None
        if state.db.server is not None:
            # `memsvc serve` on the embedded Postgres restarts it when it dies.
            supervisor = Supervisor(state.db.server)
            supervisor.start()
            state.extras["pg_supervisor"] = supervisor
        stats_keeper = StatsKeeper(state.db, interval_s=settings.planner_stats_interval_s)
        stats_keeper.start()
        state.extras["planner_stats"] = stats_keeper
        for hook in on_start:
            await hook(state)
        try:
            if mcp_running is None:
                yield
            else:
                async with mcp_running():
                    yield
        finally:
            state.ready = False
            await stats_keeper.stop()
            if supervisor is not None:
                await supervisor.stop()
            for hook in on_stop:
                await hook(state)
            if owns_runtime:
                state.runtime.close()
            await state.db.close()

    app = FastAPI(
        title="memsvc",
        version=__version__,
        summary="Long-term memory for AI agents",
        lifespan=lifespan,
    )
    errors.install(app)
    faults.install(app)
    for module in (health, admin, cubes, memories, search, ask, ingest, graph, jobs, transfer):
        app.include_router(module.router)
    app.include_router(build_admin_router())
    mcp_running = mount_mcp(app)
    openapi.install(app)
    # Outermost last: metrics see every answer; CatchAll turns what escaped into a clean 500.
    app.add_middleware(CleanURL)
    app.add_middleware(BodyLimit, limit=settings.limits.max_body_bytes)
    app.add_middleware(
        Timeouts,
        body_timeout_s=settings.limits.body_timeout_s,
        response_timeout_s=settings.limits.response_timeout_s,
    )
    app.add_middleware(CatchAll)
    app.add_middleware(Metrics)
    return app
