"""The OpenAPI document lists every status an operation can answer, with the error schema.

FastAPI documents the success status and (when there are parameters) 422. The rest come
from the rules here, so generated clients see what the service really answers:

- every authenticated operation (``/v1/...``): 400 (malformed JSON, cursor or
  ``X-Tenant-Id``), 401 (no or bad key), 403 (the key's role, or ``X-Tenant-Id`` from a
  key that is not the operator's), 404 (what it names is absent or another tenant's,
  ``X-Tenant-Id`` naming no tenant), 408 (request timeout), 422 (validation), 429 (rate
  limited) and 503 (database or models unavailable; ``Retry-After``);
- with a request body: 413 (over ``limits.max_body_bytes`` or a content/batch limit);
- ``CONFLICTS``: 409; ``GONE``: 410 (a replayed create whose memories were erased).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from memsvc.schemas.common import ErrorBody

# Route names (the handler functions) that can answer 409, and why.
CONFLICTS = {
    "create_memories": "the Idempotency-Key was used for a different request",
    "update_memory": "expected_version is stale and the edit cannot be rebased",
    "create_cube": "a cube of that name exists",
    "update_cube": "a cube of that name exists",
    "create_link": "the link exists",
    "create_tenant": "a tenant of that name exists",
    "retry_job": "the job is not a dead letter",
}
GONE = {"create_memories": "what the replayed request created was erased"}

DESCRIPTIONS = {
    400: "Bad request: malformed JSON, cursor or header",
    401: "Missing, unknown or revoked API key",
    403: "The key's role does not allow this",
    404: "Not found (or another tenant's)",
    408: "The request (or its body) took too long",
    409: "Conflict",
    410: "Gone",
    413: "Request body or a field over the limits",
    422: "Validation error",
    429: "Rate limited or over quota; see Retry-After",
    503: "Service unavailable; see Retry-After",
}
AUTHENTICATED = (400, 401, 403, 404, 408, 422, 429, 503)


def error_statuses(route: APIRoute) -> set[int]:
    """The error statuses ``route`` can answer."""
    if not route.path.startswith("/v1/"):
        return set()
    statuses = set(AUTHENTICATED)
    if route.body_field is not None:
        statuses.add(413)
    if route.name in CONFLICTS:
        statuses.add(409)
    if route.name in GONE:
        statuses.add(410)
    return statuses


def build(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with the error responses added (cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    body_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in body_schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas["ErrorBody"] = body_schema
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods:
            op = doc["paths"].get(route.path_format, {}).get(method.lower())
            if op is None:
                continue
            responses = op.setdefault("responses", {})
            for status in sorted(error_statuses(route)):
                why = CONFLICTS.get(route.name) if status == 409 else None
                why = GONE.get(route.name) if status == 410 else why
                responses[str(status)] = {
                    "description": why or DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": ref}},
                }
            # FastAPI's own 422 names HTTPValidationError; ours is the one error shape.
            if not error_statuses(route) and "422" in responses:
                responses["422"] = {
                    "description": DESCRIPTIONS[422],
                    "content": {"application/json": {"schema": ref}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc


def install(app: FastAPI) -> None:
    """Serve ``build(app)`` at ``/openapi.json``."""

    def openapi() -> dict[str, Any]:
        return build(app)

    app.openapi = openapi  # type: ignore[method-assign]
