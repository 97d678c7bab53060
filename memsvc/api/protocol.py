"""uvicorn's HTTP protocols (httptools, else h11) with a header-read timeout.

uvicorn drops a connection that stays idle between requests (``timeout_keep_alive``), but
any byte received cancels that timer, and nothing bounds the time a client may take to
send a request's line and headers: one byte every few seconds holds a connection (and its
memory) for ever. Here a timer runs from the moment a connection opens, or a new request
starts arriving on a kept-alive one, until its request line and headers are complete;
when it fires the connection is closed. The body has its own timeout
(``memsvc.api.timeouts``).

httptools (llhttp, in C) parses a request in a fraction of h11's time (pure Python): it is
what ``memsvc serve`` uses when installed (a dependency), h11 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT_S = 10.0


class _HeaderTimer(asyncio.Protocol):
    """The header timer of both protocols: armed when a connection opens or a request
    starts arriving, disarmed when its headers are in; when it fires while the protocol
    still ``_awaits_headers`` the connection is closed."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None
    # The protocol's own (uvicorn's classes set them).
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    logger: logging.Logger

    def _awaits_headers(self) -> bool:
        raise NotImplementedError

    def _arm(self) -> None:
        if self._header_timer is None and self.header_timeout_s > 0:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._awaits_headers() and not self.transport.is_closing():
            self.logger.info(
                "request headers not received in %.0f s; closed", self.header_timeout_s
            )
            self.transport.close()


class HeaderTimeoutH11Protocol(_HeaderTimer, H11Protocol):
    """``H11Protocol`` that closes connections whose request headers arrive too slowly."""

    def _awaits_headers(self) -> bool:
        return bool(self.conn.their_state is h11.IDLE)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a (new) request starts arriving
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # its line and headers are in


def h11_with_header_timeout(timeout_s: float) -> type[HeaderTimeoutH11Protocol]:
    """The h11 protocol class for uvicorn's ``http=`` with this header timeout (0: none)."""
    return type("H11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout_s": timeout_s})


def httptools_with_header_timeout(timeout_s: float) -> type[Any]:
    """The httptools protocol class with this header timeout (0: none); ImportError without
    httptools."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderTimeoutHttpToolsProtocol(_HeaderTimer, HttpToolsProtocol):
        """``HttpToolsProtocol`` that closes connections whose request headers arrive too
        slowly (the parser's callbacks say when a request begins and its headers end)."""

        header_timeout_s: float = timeout_s
        _in_headers = True

        def _awaits_headers(self) -> bool:
            return self._in_headers

        def on_message_begin(self) -> None:
            self._in_headers = True
            self._arm()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._disarm()
            super().on_headers_complete()

    return HeaderTimeoutHttpToolsProtocol


def with_header_timeout(timeout_s: float) -> type[Any]:
    """The fastest protocol available (httptools, else h11) with this header timeout."""
    try:
        return httptools_with_header_timeout(timeout_s)
    except ImportError:
        return h11_with_header_timeout(timeout_s)
