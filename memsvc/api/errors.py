"""The only place domain errors become HTTP: always ``{"error": {"code", "message", "detail"}}``,
the body ``MemsvcError.to_wire`` builds (``memsvc.errors.error_body``)."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from memsvc.errors import MemsvcError, from_http, from_validation

log = logging.getLogger("memsvc.api")


def _retry_after(err: MemsvcError, retry_after_s: int | None) -> str | None:
    if retry_after_s is not None:
        return str(retry_after_s)
    if isinstance(err.detail, dict) and "retry_after_s" in err.detail:
        return str(err.detail["retry_after_s"])
    return None


def error_response(err: MemsvcError, *, retry_after_s: int | None = None) -> JSONResponse:
    """The error as a JSON response (``Retry-After`` when given or named by its detail)."""
    resp = JSONResponse(err.to_wire(), status_code=err.status)
    retry = _retry_after(err, retry_after_s)
    if retry is not None:
        resp.headers["Retry-After"] = retry
    return resp


async def send_error(
    send: Send, err: MemsvcError, *, close: bool = False, retry_after_s: int | None = None
) -> None:
    """The same response written by pure ASGI middleware (``close``: end the connection)."""
    body = json.dumps(err.to_wire()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    retry = _retry_after(err, retry_after_s)
    if retry is not None:
        headers.append((b"retry-after", retry.encode()))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _memsvc_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MemsvcError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(from_validation(exc.errors()))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    resp = error_response(
        from_http(exc.status_code, exc.detail if isinstance(exc.detail, str) else None)
    )
    if exc.headers:
        resp.headers.update(exc.headers)
    return resp


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""
    app.add_exception_handler(MemsvcError, _memsvc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Not ``Exception``: Starlette re-raises after that handler and the server drops the
    # keep-alive connection; ``middleware.CatchAll`` answers those instead.
