"""Request timeouts (pure ASGI): a body that does not arrive within ``body_timeout_s`` is
answered ``408 request_timeout`` and the connection closed (half-sent requests were held
75 s and more); a response not started within ``response_timeout_s`` is ``503 timeout``."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memsvc.api.errors import send_error
from memsvc.errors import ServiceUnavailable, from_http

RETRY_AFTER_S = 2


class _BodyTimeout(BaseException):
    pass


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
                slow = from_http(408, "the request body did not arrive in time")
                await send_error(send, slow, close=True)
        except TimeoutError:
            if not started:
                late = ServiceUnavailable("the request took too long; retry later", code="timeout")
                await send_error(send, late, close=True, retry_after_s=RETRY_AFTER_S)
