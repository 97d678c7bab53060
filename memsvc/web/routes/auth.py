"""Sign in with an API key, sign out, and the shipped static assets."""

from __future__ import annotations

import math
import secrets
from functools import lru_cache
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from memsvc.errors import Forbidden, NotFound, RateLimited
from memsvc.store import tenants
from memsvc.web import session as sessions
from memsvc.web.deps import CSRF_MESSAGE, FormDep, SessionDep, StateDep, WebDep, read_form
from memsvc.web.errors import AdminRoute
from memsvc.web.render import SECURITY_HEADERS, STATIC_DIR, page

router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)

_STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
}


@lru_cache(maxsize=1)
def _assets() -> frozenset[str]:
    """The names of the shipped assets (listed once; the directory is part of the package)."""
    return frozenset(p.name for p in STATIC_DIR.iterdir() if p.is_file())


def _safe_next(target: str | None) -> str:
    """Only paths inside the admin view are followed after sign-in (no open redirects)."""
    if not target:
        return "/admin/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin") or "\\" in target:
        return "/admin/"
    return target


def _cookie(
    resp: Response, request: Request, name: str, value: str, *, path: str, max_age: int
) -> None:
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _login_page(request: Request, *, status: int = 200, error: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    nxt = _safe_next(request.query_params.get("next"))
    resp = page(request, "login.html", status=status, login_csrf=token, next=nxt, error=error)
    _cookie(resp, request, sessions.LOGIN_CSRF_COOKIE, token, path="/admin/login", max_age=3600)
    return resp


@router.get("/login")
async def login_form(request: Request, state: StateDep, session: SessionDep) -> Response:
    """The sign-in form (straight to the overview when already signed in)."""
    key = await sessions.signing_key(state)
    web = sessions.decode(key, request.cookies.get(sessions.COOKIE))
    if web is not None and await tenants.session_is_live(
        session, tenant_id=web.tenant_id, key_id=web.key_id, session_id=web.session_id
    ):
        return RedirectResponse("/admin/", status_code=303, headers=SECURITY_HEADERS)
    return _login_page(request)


@router.post("/login")
async def login(request: Request, state: StateDep, session: SessionDep) -> Response:
    """Check the API key; on success start a session for its tenant."""
    form = await read_form(request)
    expected = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    if not expected or not sessions.token_matches(expected, form.get("csrf") or None):
        raise Forbidden(CSRF_MESSAGE, code="csrf_failed")
    throttle: sessions.SignInThrottle = state.extras.setdefault(
        "signin_throttle", sessions.SignInThrottle()
    )
    client = request.client.host if request.client else "unknown"
    wait = throttle.wait_s(client)
    if wait > 0:
        raise RateLimited(
            f"too many failed sign-ins; try again in {math.ceil(wait)} s",
            detail={"retry_after_s": math.ceil(wait)},
        )
    principal = await tenants.authenticate(session, raw_key=form.get("key").strip())
    if principal is None:
        throttle.failed(client)
        return _login_page(request, status=401, error="invalid or revoked API key")
    throttle.succeeded(client)
    tenant = await tenants.get_tenant(session, tenant_id=principal.tenant_id)
    value = sessions.encode(await sessions.signing_key(state), principal, tenant.name)
    resp = RedirectResponse(_safe_next(form.get("next")), status_code=303, headers=SECURITY_HEADERS)
    _cookie(
        resp, request, sessions.COOKIE, value, path=sessions.COOKIE_PATH, max_age=sessions.TTL_S
    )
    resp.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path="/admin/login")
    return resp


@router.post("/logout")
async def logout(_: FormDep, web: WebDep, session: SessionDep) -> Response:
    """End the session: recorded as signed out, so a kept copy of the cookie no longer
    works; the key itself stays valid."""
    await tenants.revoke_session(session, session_id=web.session_id, expires=web.expires)
    resp = RedirectResponse("/admin/login", status_code=303, headers=SECURITY_HEADERS)
    resp.delete_cookie(sessions.COOKIE, path=sessions.COOKIE_PATH, httponly=True, samesite="strict")
    return resp


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """A file shipped in ``memsvc/web/static`` (flat; nothing outside it is reachable)."""
    media = _STATIC_TYPES.get(PurePosixPath(name).suffix)
    if media is None or name not in _assets():
        raise NotFound("no such asset")
    return FileResponse(
        STATIC_DIR / name,
        media_type=media,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
