"""The OpenAPI document lists every status each operation can answer, with the error schema."""

from __future__ import annotations

import pytest

from memsvc.api.app import create_app
from memsvc.config import Settings

AUTH = {"400", "401", "403", "404", "408", "422", "429", "503"}
BODY = AUTH | {"413"}

EXPECTED = {
    "GET /healthz": {"200"},
    "GET /readyz": {"200", "503"},
    "POST /v1/tenants": BODY | {"201", "409"},
    "GET /v1/tenants": AUTH | {"200"},
    "GET /v1/tenants/{tenant_id}/limits": AUTH | {"200"},
    "PUT /v1/tenants/{tenant_id}/limits": BODY | {"200"},
    "POST /v1/keys": BODY | {"201"},
    "GET /v1/keys": AUTH | {"200"},
    "DELETE /v1/keys/{key_id}": AUTH | {"204"},
    "POST /v1/cubes": BODY | {"201", "409"},
    "GET /v1/cubes": AUTH | {"200"},
    "GET /v1/cubes/{cube_id}": AUTH | {"200"},
    "PATCH /v1/cubes/{cube_id}": BODY | {"200", "409"},
    "DELETE /v1/cubes/{cube_id}": AUTH | {"204"},
    "POST /v1/cubes/{cube_id}/memories": BODY | {"201", "409", "410"},
    "GET /v1/cubes/{cube_id}/memories": AUTH | {"200"},
    "GET /v1/memories/{memory_id}": AUTH | {"200"},
    "PATCH /v1/memories/{memory_id}": BODY | {"200", "409"},
    "DELETE /v1/memories/{memory_id}": AUTH | {"204"},
    "POST /v1/memories/{memory_id}/restore": AUTH | {"200"},
    "GET /v1/memories/{memory_id}/versions": AUTH | {"200"},
    "GET /v1/memories/{memory_id}/versions/{number}": AUTH | {"200"},
    "GET /v1/memories/{memory_id}/provenance": AUTH | {"200"},
    "POST /v1/cubes/{cube_id}/search": BODY | {"200"},
    "POST /v1/cubes/{cube_id}/ask": BODY | {"200"},
    "GET /v1/traces/{trace_id}": AUTH | {"200"},
    "GET /v1/memories/{memory_id}/links": AUTH | {"200"},
    "POST /v1/links": BODY | {"201", "409"},
    "DELETE /v1/links/{link_id}": AUTH | {"204"},
    "GET /v1/cubes/{cube_id}/graph": AUTH | {"200"},
    "GET /v1/cubes/{cube_id}/graph/path": AUTH | {"200"},
    "GET /v1/jobs": AUTH | {"200"},
    "GET /v1/jobs/{job_id}": AUTH | {"200"},
    "POST /v1/jobs/{job_id}/retry": AUTH | {"200", "409"},
    "GET /v1/cubes/{cube_id}/export": AUTH | {"200"},
    "POST /v1/cubes/{cube_id}/import": BODY | {"200"},
    "POST /v1/cubes/{cube_id}/ingest": BODY | {"200", "202", "409", "410"},
    "GET /v1/cubes/{cube_id}/core": AUTH | {"200"},
    "GET /v1/cubes/{cube_id}/decisions": AUTH | {"200"},
    "POST /v1/feedback": BODY | {"201"},
    "GET /v1/policies": AUTH | {"200"},
    "POST /v1/policies/{name}/train": BODY | {"201"},
    "POST /v1/policies/{name}/activate": BODY | {"200"},
    "POST /v1/policies/{name}/rollback": AUTH | {"200", "409"},
}


@pytest.fixture(scope="module")
def doc() -> dict:  # type: ignore[type-arg]
    return create_app(Settings()).openapi()


def test_every_operation_documents_exactly_its_statuses(doc: dict) -> None:  # type: ignore[type-arg]
    got = {
        f"{method.upper()} {path}": set(op["responses"])
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert got == EXPECTED


def test_error_responses_use_the_error_schema(doc: dict) -> None:  # type: ignore[type-arg]
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for ops in doc["paths"].values():
        for op in ops.values():
            for status, resp in op["responses"].items():
                if int(status) >= 400 and "operationId" in op and "readyz" not in op["operationId"]:
                    assert resp["content"]["application/json"]["schema"] == ref, (op, status)
    assert set(doc["components"]["schemas"]["ErrorBody"]["properties"]) == {"error"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
