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

The SDK raises the same classes, rebuilt from the wire shape. ``error_body`` is the one
builder of that shape: the API's handlers, its ASGI middleware and the admin view all
send what it returns (through ``MemsvcError.to_wire``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar


def error_body(code: str, message: str, detail: Any = None) -> dict[str, object]:
    """The one wire shape of an error: ``{"error": {"code", "message", "detail"}}``."""
    return {"error": {"code": code, "message": message, "detail": detail}}


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
        return error_body(self.code, self.message, self.detail)


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


# Stable codes of bare HTTP statuses (a route that does not exist, a wrong method ...).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def _class_of(status: int) -> type[MemsvcError]:
    return _BY_STATUS.get(status, ServerError if status >= 500 else BadRequest)


def from_http(status: int, message: str | None = None) -> MemsvcError:
    """The error a bare HTTP status stands for (the web framework's 404, 405 ...)."""
    code = HTTP_CODES.get(status, "error")
    err = _class_of(status)(message or code.replace("_", " "), code=code)
    err.status = status  # type: ignore[misc]
    return err


def from_validation(errors: Iterable[Mapping[str, Any]]) -> BadRequest:
    """Schema validation errors as the 422 (or 400 for a body that is not JSON), without
    echoing whole inputs back (they may be megabytes)."""
    clean = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    if any(e["type"] == "json_invalid" for e in clean):
        return BadRequest("request body is not valid JSON", code="invalid_json", detail=clean)
    return ValidationFailed("request failed validation", detail=clean)


def status_of(code: object) -> int:
    """The HTTP status an error code goes with, for an error body that came without one (an
    ``event: error`` in a stream, sent after its 200); an unknown code is a server error."""
    by_code = {name: status for status, name in HTTP_CODES.items()}
    classes: list[type[MemsvcError]] = [*_BY_STATUS.values(), ServerError]
    by_code.update({cls.code: cls.status for cls in classes})
    return by_code.get(code, 500) if isinstance(code, str) else 500


def error_from_wire(status: int, body: Any) -> MemsvcError:
    """Rebuild a typed error from an HTTP status and an error body (used by the SDK)."""
    cls = _class_of(status)
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        exc = cls(str(err.get("message", "")), detail=err.get("detail"), code=err.get("code"))
    else:
        exc = cls(f"HTTP {status}", detail=body)
    exc.status = status  # type: ignore[misc]
    return exc
