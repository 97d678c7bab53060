"""Pure ASGI middleware: body size limit, hostile URLs, the last-resort 500, request metrics."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl, unquote

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memsvc import timing
from memsvc.api.errors import send_error
from memsvc.errors import PayloadTooLarge, ServerError, from_validation

log = logging.getLogger("memsvc.api")

REQUESTS = Counter("memsvc_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "memsvc_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


async def _too_large(send: Send, limit: int) -> None:
    err = PayloadTooLarge(f"request body exceeds {limit} bytes", detail={"limit": limit})
    await send_error(send, err, close=True)


class BodyLimit:
    """Refuse bodies over ``limit`` bytes (declared or streamed) with a 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(send, self.limit)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return msg

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


class CleanURL:
    """Refuse a path or query parameter holding a NUL (422): no store can keep one, and the
    routes (API and admin view alike) would otherwise pass it on to Postgres."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = _nul_in(scope)
            if where is not None:
                nul = {"loc": [where], "msg": "NUL character", "type": "value_error"}
                await send_error(send, from_validation([nul]))
                return
        await self.app(scope, receive, send)


def _nul_in(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", "") or "%00" in scope.get("raw_path", b"").decode("latin-1"):
        return "path"
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" in query or "\x00" in query:
        return "query"
    for k, v in parse_qsl(query, keep_blank_values=True):
        if "\x00" in k or "\x00" in v or "\x00" in unquote(k):
            return "query"
    return None


class CatchAll:
    """The boundary for what no handler caught: log it and answer the generic 500 in the
    error shape, as an ordinary response: the keep-alive connection stays usable (Starlette's
    own handler re-raises, and the server then drops the connection unannounced)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, receive, tracked)
        except _BodyTooLarge:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await send_error(send, ServerError("internal server error"))


class Metrics:
    """Count and time requests by route template (not raw path: ids would explode labels),
    and tell the client where its request's time went: its phases (``memsvc.timing``) as
    ``Server-Timing``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        phases, token = timing.start()
        status = 500

        async def capture(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
                msg["headers"] = [*msg.get("headers", []), (b"server-timing", phases.header())]
            await send(msg)

        try:
            await self.app(scope, receive, capture)
        finally:
            timing.stop(token)
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope["method"], path, str(status)).inc()
            LATENCY.labels(scope["method"], path).observe(time.perf_counter() - started)
