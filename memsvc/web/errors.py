"""Errors of the admin view: the API's codes and messages, rendered as pages.

A route class wraps every admin handler (and its dependencies), so the JSON handlers the
API installs never see these requests: pages get an HTML page with the same status,
``code``, ``message`` and ``detail`` as the API would send (the wire shape is embedded
as ``<script type="application/json" id="error">``); ``/admin/api/...`` gets the JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from memsvc.errors import (
    BadRequest,
    MemsvcError,
    ServerError,
    Unauthorized,
    from_http,
    from_validation,
)
from memsvc.web.render import SECURITY_HEADERS, page

log = logging.getLogger("memsvc.web")


class LoginRequired(Exception):
    """No valid session: pages redirect to the sign-in form, the JSON API answers 401."""


def as_memsvc_error(exc: Exception) -> MemsvcError:
    """The domain error an exception stands for (unknown ones become a generic 500)."""
    if isinstance(exc, MemsvcError):
        return exc
    if isinstance(exc, RequestValidationError):
        return from_validation(exc.errors())
    if isinstance(exc, StarletteHTTPException):
        return from_http(exc.status_code, exc.detail if isinstance(exc.detail, str) else None)
    return ServerError("internal server error")


def from_pydantic(exc: ValidationError) -> BadRequest:
    """A model built from a form failed validation: the API's 422, with the same detail."""
    return from_validation(exc.errors())


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/admin/api/")


def error_page(request: Request, err: MemsvcError) -> Response:
    """The error as the API's JSON (for ``/admin/api``) or as a page with the same fields."""
    wire = err.to_wire()
    if is_api(request):
        return JSONResponse(wire, status_code=err.status, headers=SECURITY_HEADERS)
    return page(request, "error.html", status=err.status, err=err, wire=wire)


def login_redirect(request: Request) -> Response:
    """Back to the sign-in form, returning here afterwards (for page views)."""
    if is_api(request):
        err = Unauthorized("sign in first")
        return JSONResponse(err.to_wire(), status_code=err.status, headers=SECURITY_HEADERS)
    target = "/admin/login"
    if request.method == "GET":
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?next=" + quote(here, safe="")
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


class AdminRoute(APIRoute):
    """An APIRoute whose failures become admin pages instead of the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except LoginRequired:
                return login_redirect(request)
            except (MemsvcError, RequestValidationError, StarletteHTTPException) as exc:
                return error_page(request, as_memsvc_error(exc))
            except Exception:
                # The boundary of the admin view: log what failed, show the generic page.
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return error_page(request, ServerError("internal server error"))

        return handler
