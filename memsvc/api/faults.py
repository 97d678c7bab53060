"""Database outages become 503 with ``Retry-After``, never 500.

When Postgres dies under the running service (or restarts, or the pool is exhausted) a
request fails with a driver or pool error; clients get ``503 unavailable`` in the one
error shape and a ``Retry-After`` telling them when to try again. The pool checks each
idle connection before use (``memsvc.store.db.ping_when_idle``), so requests succeed again
as soon as the database is back, without a restart.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from memsvc.api.errors import error_response
from memsvc.errors import ServerError, ServiceUnavailable
from memsvc.store.db import is_outage

log = logging.getLogger("memsvc.api")

RETRY_AFTER_S = 2


def outage_response() -> JSONResponse:
    """``503 unavailable`` with ``Retry-After``."""
    return error_response(
        ServiceUnavailable(
            "the database is unavailable; retry shortly", detail={"retry_after_s": RETRY_AFTER_S}
        )
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_outage(exc):
        log.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return outage_response()
    if _timed_out(exc):
        log.warning("statement timeout on %s %s", request.method, request.url.path)
        err = ServiceUnavailable("the database took too long; retry later", code="timeout")
        return error_response(err, retry_after_s=RETRY_AFTER_S)
    log.exception("unhandled database error on %s %s", request.method, request.url.path)
    return error_response(ServerError("internal server error"))


def _timed_out(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, psycopg.errors.QueryCanceled)


def install(app: FastAPI) -> None:
    """Register the outage handlers (more specific than the catch-all in ``errors``)."""
    for cls in (
        sa_exc.DBAPIError,
        sa_exc.TimeoutError,
        sa_exc.InterfaceError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
        ConnectionError,
    ):
        app.add_exception_handler(cls, _database_error)
