"""Jinja2 pages: one autoescaping environment, a few filters, and the page response."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from memsvc import __version__

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

# No inline script may run; styles set by the graph library need 'unsafe-inline'.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _dt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def _short(value: object) -> str:
    return str(value)[:8]


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _clip(value: str | None, n: int = 160) -> str:
    text = " ".join((value or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def static_url(name: str) -> str:
    """The URL of a shipped asset, versioned so a new release is never served stale."""
    return f"/admin/static/{name}?v={__version__}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The template environment (built on first use; templates ship inside the package)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(dt=_dt, short=_short, pretty=_pretty, clip=_clip)
    env.globals.update(static=static_url, version=__version__)
    return env


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the signed-in session (if any) and ``context``."""
    web = getattr(request.state, "web", None)
    html = (
        environment()
        .get_template(template)
        .render(
            web=web,
            csrf=web.csrf if web is not None else "",
            path=request.url.path,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
