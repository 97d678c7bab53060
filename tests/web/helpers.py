"""Shared by the admin view tests: sign-in over HTTP, seeding through the API, and SQL for
what the API does not write directly (links, dead letters, back-dated rows)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from memsvc.store.db import sqlalchemy_url

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ERROR_JSON = re.compile(r'<script type="application/json" id="error">(.*?)</script>', re.S)


def csrf_of(html: str) -> str:
    """The CSRF token a page embeds in its forms."""
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def page_error(resp: httpx.Response) -> dict[str, Any]:
    """The ``{"error": {...}}`` an error page embeds, checked against its visible text."""
    assert resp.headers["content-type"].startswith("text/html"), resp.headers
    match = ERROR_JSON.search(resp.text)
    assert match, resp.text[:500]
    body = json.loads(match.group(1))
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "detail"}
    assert f'<code id="error-code">{body["error"]["code"]}</code>' in resp.text
    return dict(body["error"])


async def sign_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign the client in with ``key``; returns the session's CSRF token."""
    form = await client.get("/admin/login")
    assert form.status_code == 200, form.text
    resp = await client.post(
        "/admin/login", data={"csrf": csrf_of(form.text), "key": key, "next": "/admin/"}
    )
    assert resp.status_code == 303, resp.text
    home = await client.get("/admin/")
    assert home.status_code == 200, home.text
    return csrf_of(home.text)


def db_engine(database_url: str) -> Any:
    return create_engine(sqlalchemy_url(database_url))


def add_links(database_url: str, cube_id: str, edges: list[tuple[str, str, str, float]]) -> None:
    """Links as the enrichment worker would write them: (source, target, relation, weight)."""
    engine = db_engine(database_url)
    with engine.begin() as conn:
        tenant = conn.execute(
            text("SELECT tenant_id FROM cube WHERE id = :c"), {"c": cube_id}
        ).scalar_one()
        for src, dst, rel, weight in edges:
            conn.execute(
                text(
                    "INSERT INTO link (id, tenant_id, cube_id, source_id, target_id, relation,"
                    " weight, reason, created_by, status, provenance, created_at)"
                    " VALUES (:id, :t, :c, :s, :d, :r, :w, :why, 'test:seed', 'active', '{}',"
                    " now())"
                ),
                {
                    "id": uuid.uuid4(),
                    "t": tenant,
                    "c": cube_id,
                    "s": src,
                    "d": dst,
                    "r": rel,
                    "w": weight,
                    "why": f"seeded {rel} link",
                },
            )
    engine.dispose()


def add_dead_letter(database_url: str, memory_id: str, error: str) -> int:
    """A parked enrichment job for ``memory_id`` (as the worker leaves one after its last try)."""
    engine = db_engine(database_url)
    with engine.begin() as conn:
        tenant = conn.execute(
            text("SELECT tenant_id FROM memory WHERE id = :m"), {"m": memory_id}
        ).scalar_one()
        job_id = conn.execute(
            text(
                "INSERT INTO job (tenant_id, kind, payload, status, attempts, max_attempts,"
                " last_error) VALUES (:t, 'enrich', CAST(:p AS jsonb), 'failed', 5, 5, :e)"
                " RETURNING id"
            ),
            {"t": tenant, "p": json.dumps({"memory_id": memory_id}), "e": error},
        ).scalar_one()
    engine.dispose()
    return int(job_id)


def job_row(database_url: str, job_id: int) -> tuple[str, int]:
    """(status, attempts) of a job."""
    engine = db_engine(database_url)
    with engine.begin() as conn:
        status, attempts = conn.execute(
            text("SELECT status, attempts FROM job WHERE id = :j"), {"j": job_id}
        ).one()
    engine.dispose()
    return str(status), int(attempts)
