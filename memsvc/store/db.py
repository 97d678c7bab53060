"""Database lifecycle: embedded or external Postgres, migrations, async engine and sessions."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from memsvc import timing
from memsvc.config import PACKAGE_DIR, Settings
from memsvc.store.ann import SEARCH_SETTINGS
from memsvc.store.caches import Caches
from memsvc.store.embedded import start_embedded as start_embedded
from memsvc.store.models import BINARY_VECTORS
from memsvc.store.roles import MIGRATION_LOCK, TENANT_ROLE, prepare_app_role

log = logging.getLogger(__name__)

MIGRATIONS_DIR = PACKAGE_DIR / "_migrations"


def sqlalchemy_url(url: str) -> str:
    """Normalise a libpq-style URL to the psycopg 3 driver SQLAlchemy uses."""
    for prefix in ("postgresql+psycopg2://", "postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def resolve_url(settings: Settings) -> tuple[str, Any]:
    """The database URL to use, starting the embedded server when none is configured. The
    embedded server's URL is the app role's, prepared with the superuser (``roles``)."""
    if settings.database_url is not None:
        return sqlalchemy_url(settings.database_url.get_secret_value()), None
    server = start_embedded(settings.data_dir)
    superuser = sqlalchemy_url(server.get_uri())
    return prepare_app_role(superuser, statement_timeout_s=STATEMENT_TIMEOUT_S), server


def alembic_config(url: str) -> AlembicConfig:
    """An alembic config pointing at the packaged migrations and ``url``."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Apply every pending migration (idempotent; serialised by an advisory lock)."""
    engine = create_engine(url, hide_parameters=True)
    try:
        with engine.begin() as conn:
            # No statement timeout (the app role has one): a migration over a large database,
            # or waiting for another process's, takes what it takes.
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            # Several processes may start at once (API replicas, workers): one migrates.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def binary_vectors(engine: AsyncEngine) -> None:
    """Send embeddings to Postgres as binary pgvector values (4 bytes a dimension, no float
    formatting or parsing): each new connection learns the ``vector`` type's oid once.
    Only for engines used after migrations (the type comes with migration 0001)."""
    from pgvector.psycopg.vector import VectorBinaryDumper
    from psycopg.types import TypeInfo

    async def register(conn: Any) -> None:
        info = await TypeInfo.fetch(conn, "vector")
        if info is None:
            raise RuntimeError("the vector type is missing: are migrations applied?")
        dumper = type("MemsvcVectorDumper", (VectorBinaryDumper,), {"oid": info.oid})
        conn.adapters.register_dumper("numpy.ndarray", dumper)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.run_async(register)

    setattr(engine.dialect, BINARY_VECTORS, True)


# A pooled connection idle longer than this is pinged before use; one in steady use is not.
PING_AFTER_IDLE_S = 1.0


def ping_when_idle(engine: AsyncEngine) -> None:
    """``pool_pre_ping``, for connections that sat idle: a ping per checkout was a round
    trip on every request. A connection handed back less than ``PING_AFTER_IDLE_S`` ago
    was working then; if the database dies in that second, the statement that meets the
    dead connection fails (503, see ``is_outage``) and SQLAlchemy discards every
    connection of the pool older than the failure, so one request, not one per pooled
    connection, sees the outage."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _checkin(_conn: Any, record: Any) -> None:
        record.info["memsvc_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("memsvc_idle_since")
        if since is not None and time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(conn)
        except Exception as exc:  # a dead connection: the pool replaces it and retries
            raise sa_exc.DisconnectionError("connection failed its ping") from exc


def time_statements(engine: AsyncEngine) -> None:
    """Add each statement's time to the request being timed (``memsvc.timing``: the
    ``db`` phase of ``Server-Timing``)."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before(conn: Any, _cur: Any, _stmt: Any, _params: Any, _ctx: Any, _many: Any) -> None:
        if timing.current() is not None:
            conn.info["memsvc_t0"] = time.perf_counter()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(conn: Any, _cur: Any, _stmt: Any, _params: Any, _ctx: Any, _many: Any) -> None:
        t0 = conn.info.pop("memsvc_t0", None)
        if t0 is not None:
            timing.record_statement((time.perf_counter() - t0) * 1000)


STATEMENT_TIMEOUT_S = 30.0


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached (down, restarting, pool
    exhausted) rather than that the request was wrong: callers answer 503 / retry later."""
    import psycopg
    from sqlalchemy import exc as sa_exc

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, sa_exc.TimeoutError):  # the pool's wait for a connection
            return True
        if isinstance(cur, sa_exc.DBAPIError) and cur.connection_invalidated:
            return True
        if isinstance(cur, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return _outage_dbapi(cur.orig)
        if isinstance(cur, (psycopg.OperationalError, psycopg.InterfaceError)):
            return _outage_dbapi(cur)
        if isinstance(cur, (ConnectionError, OSError)) and not isinstance(cur, FileNotFoundError):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _outage_dbapi(orig: BaseException | None) -> bool:
    import psycopg
    from psycopg import errors as pg_errors

    if orig is None:
        return True
    # A statement timeout or a deadlock is an OperationalError too, but not an outage.
    if isinstance(orig, (pg_errors.QueryCanceled, pg_errors.DeadlockDetected)):
        return False
    if isinstance(orig, psycopg.errors.LockNotAvailable):
        return False
    return isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError))


# Built once: every tenant transaction runs it (a text clause built per call spent more
# Python on its cache key than the statement took in Postgres).
_SCOPE = text(
    "SELECT set_config('role', :role, true), set_config('memsvc.tenant_id', :t, true)"
).bindparams(role=TENANT_ROLE)


async def scope_to_tenant(session: AsyncSession, tenant_id: uuid.UUID, *, rls: bool) -> None:
    """Switch this transaction to the tenant role with ``memsvc.tenant_id`` set."""
    if rls:
        await session.execute(_SCOPE, {"t": str(tenant_id)})


def connection_options(statement_timeout_s: float) -> str:
    """libpq ``options`` of every pooled connection: the statement timeout and the HNSW
    search settings (``memsvc.store.ann.SEARCH_SETTINGS``), so no search spends a round
    trip setting them."""
    settings = {"statement_timeout": str(int(statement_timeout_s * 1000)), **SEARCH_SETTINGS}
    return " ".join(f"-c {name}={value}" for name, value in settings.items())


@dataclass
class Database:
    """The async engine and session factory of one process."""

    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    server: Any = None
    # Whether row-level security can be used (migration 0003 made the tenant role).
    rls: bool = False
    # This handle's process state (every session it opens carries it: ``caches_of``).
    caches: Caches = field(default_factory=Caches)
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        server: Any = None,
        pool_size: int = 10,
        hide_parameters: bool = True,
        statement_timeout_s: float = STATEMENT_TIMEOUT_S,
    ) -> Database:
        """An engine for ``url`` (no I/O until first use). SQL parameters (user content) stay
        out of logs and error messages unless ``hide_parameters`` is off (``memsvc.logs``).
        Every statement is cancelled after ``statement_timeout_s`` (0: never), so no runaway
        query holds a connection."""
        # Connections left over from a database that died and came back are replaced on
        # checkout instead of failing the request that drew them (``ping_when_idle``).
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=20,
            pool_recycle=1800,
            hide_parameters=hide_parameters,
            pool_timeout=10,
            connect_args={"options": connection_options(statement_timeout_s)},
        )
        binary_vectors(engine)
        time_statements(engine)
        ping_when_idle(engine)
        caches = Caches()
        sessions = async_sessionmaker(engine, expire_on_commit=False, info={"caches": caches})
        return cls(url=url, engine=engine, sessions=sessions, server=server, caches=caches)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One session in one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def detect_rls(self) -> bool:
        """Turn the second wall on when this user may take the tenant role."""
        async with self.engine.connect() as conn:
            row = await conn.execute(
                text(
                    "SELECT pg_has_role(current_user, r.oid, 'MEMBER') "
                    "FROM pg_roles r WHERE r.rolname = :role"
                ),
                {"role": TENANT_ROLE},
            )
            self.rls = bool(row.scalar())
        if not self.rls:
            log.warning("row-level security is off: role %s is not available", TENANT_ROLE)
        return self.rls

    async def warn_if_superuser(self) -> bool:
        """Log a warning when this user is a superuser (possible only with an external
        database URL): any SQL-level flaw would then own the whole server."""
        async with self.engine.connect() as conn:
            row = await conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            )
            superuser = bool(row.scalar())
        if superuser:
            log.warning(
                "the database user is a superuser: give memsvc a role of its own "
                "(README: Database role)"
            )
        return superuser

    @asynccontextmanager
    async def tenant_transaction(self, tenant_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
        """A transaction that can only see ``tenant_id``'s rows (row-level security)."""
        async with self.transaction() as session:
            await scope_to_tenant(session, tenant_id, rls=self.rls)
            yield session

    async def ping(self) -> None:
        """Raise if the database cannot answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        """Dispose of the pool and let go of the embedded server, which stops when no other
        process uses it. (pgserver's own exit hook never runs when a signal ends the
        process — uvicorn re-raises SIGTERM after its shutdown — and the server was left
        running after ``memsvc serve`` stopped.)"""
        if not self._closed:
            self._closed = True
            await self.caches.wait()
            await self.engine.dispose()
            if self.server is not None:
                await asyncio.to_thread(self.server.cleanup)
