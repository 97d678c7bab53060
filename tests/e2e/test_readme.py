"""Every code snippet of README.md runs against a served instance, so the docs cannot drift.

The set-up commands (install + serve, install + test) are what CI itself runs (.ci/run);
every other block is executed here, as written, with only the address of the test server
put in place of the README's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from memsvc.config import Settings
from tests.api.helpers import add, make_cube
from tests.conftest import LiveServer, Service, db_url

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
# Run by .ci/run on every change (install, serve, the test suite), not from here.
SETUP = {"bash scripts/serve.sh", "bash scripts/test.sh"}
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(README.read_text())]


def runnable() -> list[tuple[str, str]]:
    return [
        (lang, code)
        for lang, code in blocks()
        if not any(code.strip().startswith(cmd) for cmd in SETUP)
    ]


@pytest.fixture()
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The README's default data directory name, so its snippets read the key as written."""
    return Settings(
        data_dir=tmp_path / "memsvc-data",
        database_url=database_url,  # type: ignore[arg-type]
        print_admin_key=False,
    )


def test_every_readme_block_is_a_setup_command_or_runs_here() -> None:
    langs = [lang for lang, _ in runnable()]
    assert sorted(set(langs)) == ["bash", "python", "sql"], "a new README snippet needs a test here"
    assert langs.count("bash") == 3 and langs.count("python") == len(EXPECTED_OUTPUT)
    assert langs.count("sql") == 1
    assert len(blocks()) - len(langs) == len(SETUP)


def _at(code: str, default: str, url: str) -> str:
    assert code.count(default) >= 1, f"the snippet no longer names {default}"
    return code.replace(default, url)


def _documents(text: str) -> list[dict[str, object]]:
    """The JSON documents curl printed one after another (curl adds no newline)."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
        while at < len(text) and text[at].isspace():
            at += 1
    return docs


# What each python block prints, in README order (its stdout, compared line by line).
EXPECTED_OUTPUT: list[Callable[[list[str]], bool]] = [
    lambda lines: lines[0].endswith(" Prefers window seats"),
    lambda lines: lines == ["5", "['Lives in Lyon', 'Lives in Paris']"],
    lambda lines: (
        lines[0] == "Ann flew Lisbon to Boston on 12 March None"
        and lines[1] == "retrieve"
        and lines[-2:] == ["result", "retrieve"]
    ),
    lambda lines: (
        lines
        == [
            "[('insert', 'episodic'), ('insert', 'episodic')]",
            "store_all@v1",
            "1",
            "['learned', 'llm', 'store_all']",
        ]
    ),
    lambda lines: lines == ["diet", "None"],
]


@pytest.mark.parametrize("index", range(len(EXPECTED_OUTPUT)))
def test_python_snippet(live_server: LiveServer, tmp_path: Path, index: int) -> None:
    code = [c for lang, c in runnable() if lang == "python"][index]
    code = _at(code, "http://127.0.0.1:8080", live_server.url)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert EXPECTED_OUTPUT[index](out.stdout.splitlines()), out.stdout


def _run_bash(index: int, live_server: LiveServer, tmp_path: Path) -> str:
    code = [c for lang, c in runnable() if lang == "bash"][index]
    code = _at(code, "localhost:8080", live_server.url.removeprefix("http://"))
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_curl_snippet(live_server: LiveServer, tmp_path: Path) -> None:
    created, found = _documents(_run_bash(0, live_server, tmp_path))
    [memory] = created["items"]  # type: ignore[index]
    assert memory["content"] == "Likes jazz"
    [hit] = found["results"]  # type: ignore[index]
    assert hit["memory"]["id"] == memory["id"]
    assert hit["explain"]["vector"]["rank"] == 1  # explain: true names each channel's rank


def test_ask_curl_snippet(live_server: LiveServer, tmp_path: Path) -> None:
    from memsvc.sdk._core import EventDecoder

    out = _run_bash(1, live_server, tmp_path)
    answer, at = json.JSONDecoder().raw_decode(out)
    assert answer["evidence"][0]["memory"]["content"] == ("Ann flew Lisbon to Boston on 12 March")
    assert answer["answer"] is None and answer["cycles"] <= 1
    decoder = EventDecoder()
    events = [e for e in map(decoder.feed, out[at:].lstrip().splitlines()) if e is not None]
    assert {e.event for e in events[:-1]} == {"step"} and events[-1].event == "result"
    result = json.loads(events[-1].data)
    assert [e["memory"]["content"] for e in result["evidence"]] == ["Luis is allergic to peanuts"]


def test_ingest_curl_snippet(live_server: LiveServer, tmp_path: Path) -> None:
    out, listed = _documents(_run_bash(2, live_server, tmp_path))
    assert out["policy"] == "store_all"  # type: ignore[index]
    assert [d["operation"] for d in out["decisions"]] == ["insert", "insert"]  # type: ignore[index]
    assert {m["user_id"] for m in out["memories"]} == {"ann"}  # type: ignore[index]
    assert [d["id"] for d in listed["items"]] == [d["id"] for d in out["decisions"]]  # type: ignore[index]


def _statements(code: str) -> list[str]:
    lines = [line.split("--")[0] for line in code.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@pytest.fixture()
def fresh_role(pg_base_url: str, app_user: str | None) -> tuple[str, str]:
    """Names for a new database and a new role (made and dropped by the test)."""
    if app_user is None:
        pytest.skip("roles are not made on an external test server")
    return f"e_{uuid.uuid4().hex[:12]}", f"memsvc_e_{uuid.uuid4().hex[:8]}"


@pytest.mark.anyio
async def test_external_role_snippet(  # type: ignore[no-untyped-def]
    pg_base_url: str, fresh_role: tuple[str, str], tmp_path: Path, runtime
) -> None:
    from memsvc.api.app import create_app

    [code] = [c for lang, c in runnable() if lang == "sql"]
    name, role = fresh_role
    admin = create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    superuser = create_engine(db_url(pg_base_url, name), isolation_level="AUTOCOMMIT")
    try:
        with superuser.connect() as conn:
            for statement in _statements(_at(code, "memsvc_app", role)):
                try:
                    conn.execute(text(statement))
                except DBAPIError as e:
                    # The cluster's tenant role exists already (the tests' own set-up made it).
                    assert isinstance(e.orig, psycopg.errors.DuplicateObject), statement
                    assert statement == "CREATE ROLE memsvc_tenant NOLOGIN"
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=db_url(pg_base_url, name, role),  # type: ignore[arg-type]
            print_admin_key=False,
        )
        app = create_app(settings, runtime=runtime)
        async with app.router.lifespan_context(app):
            state = app.state.memsvc
            assert state.db.rls
            assert not await state.db.warn_if_superuser()
            key = (settings.data_dir / "admin.key").read_text().strip()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://memsvc") as client:
                service = Service(app, client, key)
                cube = await make_cube(service)
                [memory] = await add(service, cube, {"content": "Likes jazz"})
                r = await client.post(
                    f"/v1/cubes/{cube}/search", json={"query": "jazz"}, headers=service.auth()
                )
                assert [h["memory"]["id"] for h in r.json()["results"]] == [memory["id"]]
    finally:
        superuser.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()
