"""No content or secrets in logs and job errors (issue 12, item 7)."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from memsvc.config import Settings
from memsvc.jobs.handlers import JobContext, JobHandler
from memsvc.jobs.queue import ClaimedJob
from memsvc.jobs.worker import Worker
from memsvc.logs import JsonFormatter, safe_error
from memsvc.store.jobs import enqueue_many
from tests.api.helpers import add, make_cube
from tests.conftest import Service

pytestmark = pytest.mark.anyio

MARKER = "quokka5519"


def _logged(caplog: pytest.LogCaptureFixture, formatter: logging.Formatter) -> str:
    """What the server logged (the test's own HTTP client logs its URLs: not the server)."""
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    return "\n".join(formatter.format(r) for r in server)


async def _write_search_and_fail(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": f"the alarm code is {MARKER}", "tags": [MARKER]})
    await service.client.patch(
        f"/v1/memories/{mem['id']}",
        json={"content": f"the alarm code is now {MARKER}2", "expected_version": 1},
        headers=service.auth(),
    )
    await service.client.post(
        f"/v1/cubes/{cube}/search", json={"query": MARKER}, headers=service.auth()
    )
    await service.client.get(
        f"/v1/cubes/{cube}/memories", params={"tag": MARKER}, headers=service.auth()
    )


async def test_logs_carry_no_content_even_with_sql_logging_on(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.DEBUG):
            await _write_search_and_fail(service)
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logged = _logged(caplog, JsonFormatter())
    assert "INSERT INTO memory" in logged  # SQL logging was on
    assert MARKER not in logged


async def test_json_log_lines_hide_query_strings_unless_content_is_debugged() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/v1/cubes/x/memories?tag={MARKER}", "1.1", 200),
        None,
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info" and line["logger"] == "uvicorn.access"
    assert line["msg"] == '127.0.0.1:5 - "GET /v1/cubes/x/memories?… HTTP/1.1" 200'
    assert MARKER in JsonFormatter(debug_content=True).format(record)


def test_the_debug_flag_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().log.debug_content is False
    monkeypatch.setenv("MEMSVC_LOG__DEBUG_CONTENT", "true")
    assert Settings().log.debug_content is True


async def test_a_job_failing_on_a_database_error_tells_the_tenant_a_class_and_a_safe_message(
    service: Service, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    state = service.app.state.memsvc  # type: ignore[attr-defined]
    async with state.db.transaction() as s:
        tenant_id = (
            await s.execute(text("SELECT id FROM tenant WHERE name = 'default'"))
        ).scalar_one()
        await enqueue_many(
            s, kind="probe", payloads=[{"memory_id": str(uuid.uuid4())}], tenant_id=tenant_id
        )

    async def bad_sql(ctx: JobContext, job: ClaimedJob) -> dict[str, object]:
        async with ctx.db.transaction() as s:
            # Postgres quotes the bad value in its message: content, in a real job.
            await s.execute(text("SELECT CAST(:v AS integer)"), {"v": MARKER})
        return {}

    worker = Worker(
        state.db,
        settings.model_copy(update={"jobs": settings.jobs.model_copy(update={"max_attempts": 1})}),
        llm=None,
        handlers={"probe": JobHandler(bad_sql)},
    )
    with caplog.at_level(logging.INFO):
        assert await worker.run_until_idle() == 1
    listed = await service.client.get("/v1/jobs", params={"kind": "probe"}, headers=service.auth())
    [job] = listed.json()["items"]
    got = await service.client.get(f"/v1/jobs/{job['id']}", headers=service.auth())
    error = got.json()["last_error"]
    assert error == "DataError: database error (SQLSTATE 22P02)"
    # The traceback is in the server's log only, without the value.
    logged = _logged(caplog, JsonFormatter())
    assert "Traceback" in logged and "bad_sql" in logged
    assert MARKER not in logged


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("enrich job has no tenant"), "ValueError: enrich job has no tenant"),
        (
            FileNotFoundError(2, "No such file", "/srv/memsvc/data/x.bin"),
            "FileNotFoundError: [Errno 2] No such file: '<path>'",
        ),
        (RuntimeError("a\nb " + "x" * 600), "RuntimeError: a"),
    ],
)
def test_safe_error_keeps_the_class_and_drops_paths_and_extra_lines(
    exc: Exception, expected: str
) -> None:
    assert safe_error(exc) == expected
    assert str(Path.cwd()) not in safe_error(exc)
