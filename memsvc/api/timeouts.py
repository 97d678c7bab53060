"""Request timeouts (pure ASGI): a body that does not arrive within ``body_timeout_s`` is
answered ``408 request_timeout`` and the connection closed (half-sent requests were held
75 s and more); a response not started within ``response_timeout_s`` is ``503 timeout``."""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTimeout(BaseException):
    pass


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "detail": None}}).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    if status == 503:
        headers.append((b"retry-after", b"2"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Timeouts:
    """Deadlines for reading the body and for the whole response."""

    def __init__(
        self, app: ASGIApp, *, body_timeout_s: float = 30.0, response_timeout_s: float = 60.0
    ) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s
        self.response_timeout_s = response_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def timed_receive() -> Message:
            try:
                return await asyncio.wait_for(receive(), timeout=self.body_timeout_s)
            except TimeoutError:
                raise _BodyTimeout from None

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.response_timeout_s):
                await self.app(scope, timed_receive, tracking_send)
        except _BodyTimeout:
            if not started:
                await _error(
                    send, 408, "request_timeout", "the request body did not arrive in time"
                )
        except TimeoutError:
            if not started:
                await _error(send, 503, "timeout", "the request took too long; retry later")
