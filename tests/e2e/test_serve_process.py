"""`memsvc serve` as a real process on its embedded Postgres: first start, restart, CLI keys."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from memsvc.sdk import MemoryClient
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _serve(data_dir: Path, port: int, **extra_env: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MEMSVC_DATABASE_URL": "", "PYTHONUNBUFFERED": "1", **extra_env}
    env.pop("MEMSVC_DATABASE_URL")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memsvc.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _wait_ready(proc: subprocess.Popen[str], url: str, timeout: float = 120) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError("serve exited:\n" + "".join(lines))
        lines.append(line)
        if "memsvc: ready on" in line:
            assert httpx.get(f"{url}/readyz").status_code == 200
            return lines
    raise AssertionError("serve did not become ready:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_serve_bootstraps_then_restart_keeps_every_memory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(data, port)
    try:
        out = "".join(_wait_ready(proc, url))
        key = (data / "admin.key").read_text().strip()
        assert key in out  # printed once on first start
        assert (data / "admin.key").stat().st_mode & 0o777 == 0o600
        with MemoryClient(url, key) as client:
            cube = client.create_cube("durable")
            ids = [m.id for m in client.add_many(cube.id, [{"content": f"m{i}"} for i in range(5)])]
    finally:
        _stop(proc)
    proc = _serve(data, port)
    try:
        out = "".join(_wait_ready(proc, url))
        assert key not in out  # not printed again
        with MemoryClient(url, key) as client:
            assert [m.id for m in client.iter_memories(cube.id)] == ids
    finally:
        _stop(proc)
    # Stopping memsvc stops its embedded Postgres (no postmaster left behind).
    assert not (data / "pg" / "postmaster.pid").exists()


def test_cli_keys_create_makes_a_working_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "MEMSVC_DATABASE_URL"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "memsvc.cli",
            "keys",
            "create",
            "--tenant",
            "acme",
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    key = res.stdout.strip().splitlines()[-1]
    assert key.startswith("msk_")
    port = free_port()
    proc = _serve(data, port, MEMSVC_LIMITS__HEADER_TIMEOUT_S="2")
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}")
        with MemoryClient(f"http://127.0.0.1:{port}", key) as client:
            assert client.create_cube("from-cli").name == "from-cli"
        # A client dripping its request headers is dropped after the header timeout.
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(0.2)
            start = time.monotonic()
            closed = False
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                try:
                    sock.sendall(bytes([byte]))
                    closed = sock.recv(64) == b""
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                if closed:
                    break
            assert closed and time.monotonic() - start < 6
    finally:
        _stop(proc)
