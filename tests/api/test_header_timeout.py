"""A client sending request headers slowly is dropped (issue 12, item 9): raw sockets
against uvicorn serving with ``memsvc.api.protocol``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from memsvc.api.protocol import (
    DEFAULT_HEADER_TIMEOUT_S,
    h11_with_header_timeout,
    httptools_with_header_timeout,
    with_header_timeout,
)
from memsvc.config import LimitSettings
from tests.conftest import free_port

TIMEOUT_S = 0.8


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=["h11", "httptools"])
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    make = h11_with_header_timeout if request.param == "h11" else httptools_with_header_timeout
    config = uvicorn.Config(
        _ok,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http=make(TIMEOUT_S),
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> float:
    """Seconds until the server closes ``sock`` (dripping ``drip`` byte by byte)."""
    start = time.monotonic()
    sock.settimeout(0.1)
    i = 0
    while time.monotonic() - start < seconds:
        if i < len(drip):
            try:
                sock.sendall(drip[i : i + 1])
            except OSError:
                return time.monotonic() - start
            i += 1
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start
    raise AssertionError(f"connection still open after {seconds} s")


def test_headers_sent_slowly_are_dropped(port: int) -> None:
    slow = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 500
    with socket.create_connection(("127.0.0.1", port)) as sock:
        took = _closed_within(sock, 10, drip=slow)  # a byte every 0.1 s, never finished
    assert TIMEOUT_S * 0.8 <= took < TIMEOUT_S + 2


def test_a_silent_connection_is_dropped(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        took = _closed_within(sock, 10)
    assert took < TIMEOUT_S + 2


def test_prompt_requests_are_served_and_the_timer_rearms_per_request(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(2):  # longer in all than the header timeout, each request prompt
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(5)
            answer = b""
            while not answer.endswith(b"ok"):
                answer += sock.recv(1024)
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(TIMEOUT_S * 0.7)
        # On the kept-alive connection, a next request whose headers drip is dropped too.
        took = _closed_within(sock, 10, drip=b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 500)
    assert took < TIMEOUT_S + 2


def test_serve_uses_the_configured_header_timeout() -> None:
    assert LimitSettings().header_timeout_s == DEFAULT_HEADER_TIMEOUT_S == 10.0
    assert h11_with_header_timeout(3.0).header_timeout_s == 3.0
    # serve takes httptools (a dependency of the server extra) over h11.
    assert with_header_timeout(3.0).__name__ == "HeaderTimeoutHttpToolsProtocol"
    assert with_header_timeout(3.0).header_timeout_s == 3.0
