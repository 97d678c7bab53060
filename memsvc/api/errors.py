"""The only place domain errors become HTTP: always ``{"error": {"code", "message", "detail"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memsvc.errors import MemsvcError

log = logging.getLogger("memsvc.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(status: int, code: str, message: str, detail: Any = None) -> JSONResponse:
    """A JSON error in the one wire shape."""
    body = {"error": {"code": code, "message": message, "detail": detail}}
    return JSONResponse(body, status_code=status)


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    """Validation errors without echoing whole inputs back (they may be megabytes)."""
    out = []
    for e in errors:
        item = {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        out.append(item)
    return out


async def _memsvc_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MemsvcError)
    resp = error_response(exc.status, exc.code, exc.message, exc.detail)
    if isinstance(exc.detail, dict) and "retry_after_s" in exc.detail:
        resp.headers["Retry-After"] = str(exc.detail["retry_after_s"])
    return resp


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", "request body is not valid JSON", _clean(errors))
    return error_response(422, "validation_error", "request failed validation", _clean(errors))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    resp = error_response(exc.status_code, code, message)
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
