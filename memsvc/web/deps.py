"""Injectables of the admin view, as ``Annotated`` aliases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import BadRequest, Forbidden, PayloadTooLarge
from memsvc.schemas import CubeRead
from memsvc.schemas.common import bad_text
from memsvc.state import AppState
from memsvc.store import cubes, tenants
from memsvc.store.db import scope_to_tenant
from memsvc.web import session as sessions
from memsvc.web.errors import LoginRequired

MAX_FORM_BYTES = 1024 * 1024
CSRF_MESSAGE = "CSRF token missing or invalid; reload the page"


async def get_state(request: Request) -> AppState:
    """The process-wide services built by the app's lifespan."""
    state: AppState = request.app.state.memsvc
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent."""
    async with state.db.transaction() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def signed_in(request: Request, state: StateDep, session: SessionDep) -> sessions.WebSession:
    """The operator's session, or a redirect to the sign-in form (also once the key is revoked
    or the session signed out)."""
    key = await sessions.signing_key(state)
    web = sessions.decode(key, request.cookies.get(sessions.COOKIE))
    if web is None or not await tenants.session_is_live(
        session, tenant_id=web.tenant_id, key_id=web.key_id, session_id=web.session_id
    ):
        raise LoginRequired
    # From here on this request's transaction sees only the operator's tenant.
    await scope_to_tenant(session, web.tenant_id, rls=state.db.rls)
    request.state.web = web
    return web


WebDep = Annotated[sessions.WebSession, Depends(signed_in)]


@dataclass
class Form:
    """A submitted ``application/x-www-form-urlencoded`` form."""

    fields: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        """The first value of ``name`` (``default`` when absent)."""
        values = self.fields.get(name)
        return values[0] if values else default

    def optional(self, name: str) -> str | None:
        """The stripped value of ``name``, or None when absent or blank."""
        value = self.get(name).strip()
        return value or None


async def read_form(request: Request) -> Form:
    """Parse a urlencoded body (the only kind the admin forms send)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise BadRequest("expected a form submission", code="unsupported_media_type")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"form exceeds {MAX_FORM_BYTES} bytes", code="payload_too_large")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("malformed form submission", code="invalid_form") from exc
    for name, values in parsed.items():
        for text in (name, *values):
            why = bad_text(text)
            if why:
                raise BadRequest(f"{why} in form field {name[:40]!r}", code="invalid_form")
    return Form(fields=parsed)


async def checked_form(request: Request, web: WebDep) -> Form:
    """The form of a state-changing request, after its CSRF token is checked (403 otherwise)."""
    try:
        form = await read_form(request)
    except BadRequest:
        form = Form()  # not a form at all (JSON, multipart, nothing): it carries no token
    if not sessions.token_matches(web.csrf, form.get("csrf") or None):
        raise Forbidden(CSRF_MESSAGE, code="csrf_failed")
    return form


FormDep = Annotated[Form, Depends(checked_form)]


async def load_cube(cube_id: uuid.UUID, web: WebDep, session: SessionDep) -> CubeRead:
    """The operator's cube named in the path, or 404 (also for other tenants' cubes)."""
    return await cubes.get(session, tenant_id=web.tenant_id, cube_id=cube_id)


CubeDep = Annotated[CubeRead, Depends(load_cube)]
