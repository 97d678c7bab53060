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

from memsvc.schemas.common import ErrorBody

# Operations ("METHOD /path") that can answer 409, and why.
CONFLICTS = {
    "POST /v1/cubes/{cube_id}/memories": "the Idempotency-Key was used for a different request",
    "PATCH /v1/memories/{memory_id}": "expected_version is stale and the edit cannot be rebased",
    "POST /v1/cubes": "a cube of that name exists",
    "PATCH /v1/cubes/{cube_id}": "a cube of that name exists",
    "POST /v1/links": "the link exists",
    "POST /v1/tenants": "a tenant of that name exists",
    "POST /v1/jobs/{job_id}/retry": "the job is not a dead letter",
    "POST /v1/cubes/{cube_id}/ingest": "the Idempotency-Key was used for a different request",
    "POST /v1/policies/{name}/rollback": "the packaged version is active: nothing to roll back",
}
GONE = {
    "POST /v1/cubes/{cube_id}/memories": "what the replayed request created was erased",
    "POST /v1/cubes/{cube_id}/ingest": "what the replayed request created was erased",
}

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


def error_statuses(method: str, path: str, *, has_body: bool) -> set[int]:
    """The error statuses the operation ``method path`` can answer."""
    if not path.startswith("/v1/"):
        return set()
    name = f"{method.upper()} {path}"
    statuses = set(AUTHENTICATED)
    if has_body:
        statuses.add(413)
    if name in CONFLICTS:
        statuses.add(409)
    if name in GONE:
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
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            statuses = error_statuses(method, path, has_body="requestBody" in op)
            if "422" in responses:  # FastAPI's names HTTPValidationError: ours is ErrorBody
                statuses.add(422)
            key = f"{method.upper()} {path}"
            for status in sorted(statuses):
                why = CONFLICTS.get(key) if status == 409 else None
                why = GONE.get(key) if status == 410 else why
                responses[str(status)] = {
                    "description": why or DESCRIPTIONS[status],
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
