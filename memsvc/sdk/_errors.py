"""Errors the SDK adds to ``memsvc.errors``; every error it raises is a ``MemsvcError``.

    MemsvcError
    ├── ServiceUnavailable      503  (server said so, after retries)
    │   └── TransportError           no answer: connect error or timeout, after retries
    └── ServerError             500  (or any other 5xx)
        └── InvalidResponse          a 2xx answer that is not the expected JSON shape

Any other status is rebuilt by ``memsvc.errors.error_from_wire`` into its own class.
"""

from __future__ import annotations

from memsvc.errors import ServerError, ServiceUnavailable


class TransportError(ServiceUnavailable):
    """The server could not be reached or did not answer in time (after retries)."""

    code = "transport_error"


class InvalidResponse(ServerError):
    """A success answer whose body is not what this SDK version expects."""

    code = "invalid_response"
