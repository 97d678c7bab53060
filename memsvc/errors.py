"""The one error tree of memsvc. Only ``memsvc.api`` maps it to HTTP.

    MemsvcError                   (code, message, detail; status for the wire)
    ├── BadRequest           400  malformed or semantically invalid input
    │   └── ValidationFailed 422  body/params failed schema validation
    ├── Unauthorized         401  missing or unknown API key
    ├── Forbidden            403  key lacks the admin right (or CSRF failed)
    ├── NotFound             404  absent, or belongs to another tenant
    ├── Conflict             409  stale expected_version, duplicate name, idempotency reuse
    ├── Gone                 410  what a replayed request created was erased
    ├── PayloadTooLarge      413  content, batch or body over the limits
    ├── RateLimited          429  over the rate (rate_limited) or daily quota (quota_exceeded)
    ├── ServiceUnavailable   503  database or models not ready
    ├── ServerError          500  a bug; the message is generic, the detail logged
    └── llm.errors.LLMError  502  the LLM gave no usable answer (enrichment: heuristic fallback)
        ├── LLMUnavailable       503  no answer from the provider (LLMCircuitOpen: not asked)
        ├── LLMOutputInvalid     502  output failed validation after the repair call
        └── LLMBudgetExceeded    429  the tenant's hourly LLM budget is spent

The SDK raises the same classes, rebuilt from the wire shape.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MemsvcError(Exception):
    """Base of every memsvc error; carries a stable code, a message and optional detail."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "error"

    def __init__(self, message: str, *, detail: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        if code is not None:
            self.code = code  # type: ignore[misc]

    def to_wire(self) -> dict[str, object]:
        """The error body, as the API sends it."""
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


class BadRequest(MemsvcError):
    status = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    status = 422
    code = "validation_error"


class Unauthorized(MemsvcError):
    status = 401
    code = "unauthorized"


class Forbidden(MemsvcError):
    status = 403
    code = "forbidden"


class NotFound(MemsvcError):
    status = 404
    code = "not_found"


class Conflict(MemsvcError):
    status = 409
    code = "conflict"


class Gone(MemsvcError):
    status = 410
    code = "gone"


class PayloadTooLarge(MemsvcError):
    status = 413
    code = "payload_too_large"


class RateLimited(MemsvcError):
    status = 429
    code = "rate_limited"


class ServiceUnavailable(MemsvcError):
    status = 503
    code = "unavailable"


class ServerError(MemsvcError):
    status = 500
    code = "internal_error"


_BY_STATUS: dict[int, type[MemsvcError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_from_wire(status: int, body: Any) -> MemsvcError:
    """Rebuild a typed error from an HTTP status and an error body (used by the SDK)."""
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else BadRequest)
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        exc = cls(str(err.get("message", "")), detail=err.get("detail"), code=err.get("code"))
    else:
        exc = cls(f"HTTP {status}", detail=body)
    exc.status = status  # type: ignore[misc]
    return exc
