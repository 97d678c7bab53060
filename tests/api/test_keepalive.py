"""A 500 (should one still happen) is an ordinary answer: the keep-alive connection stays up."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from memsvc.config import Settings
from tests.conftest import free_port


@pytest.fixture()
def failing_server(settings: Settings, runtime) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """uvicorn serving the real app plus one route that raises what no handler catches."""
    import uvicorn

    from memsvc.api.app import create_app

    app = create_app(settings, runtime=runtime)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def _exchange(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: memsvc\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_500_keeps_the_connection_usable(failing_server: str) -> None:
    host, port = failing_server.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        first = _exchange(sock, "/boom")
        assert first.startswith(b"HTTP/1.1 500"), first
        assert b'"internal_error"' in first
        assert b"connection: close" not in first.lower()
        second = _exchange(sock, "/healthz")
        assert second.startswith(b"HTTP/1.1 200"), second


def test_an_httpx_client_reuses_its_connection_after_a_500(failing_server: str) -> None:
    with httpx.Client(base_url=f"http://{failing_server}") as client:
        first = client.get("/boom")
        assert first.status_code == 500
        assert first.json()["error"]["code"] == "internal_error"
        port1 = first.extensions["network_stream"].get_extra_info("client_addr")
        second = client.get("/healthz")
        assert second.status_code == 200
        port2 = second.extensions["network_stream"].get_extra_info("client_addr")
        assert port1 == port2
