"""Shared fixtures: one embedded Postgres per run, a fresh database per test, real models."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from memsvc.config import LimitSettings, ModelSettings, Settings
from memsvc.store.db import STATEMENT_TIMEOUT_S, migrate, sqlalchemy_url, start_embedded
from memsvc.store.roles import APP_ROLE, prepare_app_role

TEMPLATE_DB = "memsvc_template"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded server (its superuser: creates and drops databases), with a migrated
    template database to clone per test. On the embedded server the template is prepared
    and migrated as the app role, as ``memsvc serve`` does; an external server's role is
    used as given."""
    external = os.environ.get("MEMSVC_TEST_DATABASE_URL")
    if external:
        base = sqlalchemy_url(external)
        server = None
    else:
        # Outside pytest's own temp root: a second pytest session on the machine makes that
        # root private again (0700), and the embedded server (run as its own user when the
        # tests run as root) would lose its data directory mid-run.
        pg_dir = Path(tempfile.mkdtemp(prefix="memsvc-test-pg-"))
        server = start_embedded(pg_dir)
        base = sqlalchemy_url(server.get_uri())
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}"))
        conn.execute(text(f"CREATE DATABASE {TEMPLATE_DB}"))
    template = db_url(base, TEMPLATE_DB)
    if server is not None:
        template = prepare_app_role(template, statement_timeout_s=STATEMENT_TIMEOUT_S)
    migrate(template)
    yield base
    admin.dispose()
    if server is not None:
        server.cleanup()
        shutil.rmtree(pg_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def app_user(pg_base_url: str) -> str | None:
    """The user tests connect as: the app role on the embedded server, else the given one."""
    return None if os.environ.get("MEMSVC_TEST_DATABASE_URL") else APP_ROLE


def db_url(base: str, name: str, user: str | None = None) -> str:
    """``base`` pointing at database ``name`` (as ``user``, when given)."""
    url = make_url(base).set(database=name)
    if user is not None:
        url = url.set(username=user, password=None)
    return url.render_as_string(hide_password=False)


@pytest.fixture()
def database_url(pg_base_url: str, app_user: str | None) -> Iterator[str]:
    """A fresh, migrated database for one test (cloned from the template in ~100 ms), to
    connect to as the app role."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"))
    yield db_url(pg_base_url, name, app_user)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="session")
def runtime():  # type: ignore[no-untyped-def]
    """The real packaged MiniLM embedder, loaded once per run."""
    from memsvc.runtime import build_runtime

    rt = build_runtime(ModelSettings())
    yield rt
    rt.close()


@pytest.fixture()
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for one test: its own database and data dir, no printed keys."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,  # type: ignore[arg-type]
        print_admin_key=False,
        # Off except in the rate-limit tests (property and schema tests send many requests).
        limits=LimitSettings(rate_per_s=0),
    )


class Service:
    """A running app: an HTTP client for it and its first admin key."""

    def __init__(self, app: object, client: httpx.AsyncClient, admin_key: str) -> None:
        self.app = app
        self.client = client
        self.admin_key = admin_key

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}


@pytest.fixture()
async def service(settings: Settings, runtime) -> AsyncIterator[Service]:  # type: ignore[no-untyped-def]
    """The real app in-process (lifespan run), spoken to over ASGI by httpx."""
    from memsvc.api.app import create_app

    app = create_app(settings, runtime=runtime)
    async with app.router.lifespan_context(app):
        key = (settings.data_dir / "admin.key").read_text().strip()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://memsvc") as client:
            yield Service(app, client, key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The real app served by uvicorn on a loopback port, in a background thread."""

    def __init__(self, url: str, admin_key: str, settings: Settings) -> None:
        self.url = url
        self.admin_key = admin_key
        self.settings = settings


@pytest.fixture()
def live_server(settings: Settings, runtime) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """uvicorn serving the app over real HTTP on 127.0.0.1."""
    import uvicorn

    from memsvc.api.app import create_app

    port = free_port()
    app = create_app(settings, runtime=runtime)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    key = (settings.data_dir / "admin.key").read_text().strip()
    yield LiveServer(f"http://127.0.0.1:{port}", key, settings)
    server.should_exit = True
    thread.join(timeout=30)
