"""Postgres faults under a live `memsvc serve` (issue 12, item 8): the embedded postmaster
killed with SIGKILL gives 503 + Retry-After, never 500, and the service recovers by itself;
a `memsvc serve` killed with SIGKILL leaves no stale handle behind."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port
from tests.e2e.test_serve_process import _serve, _stop, _wait_ready

pytestmark = pytest.mark.slow


def _postmaster_pid(data: Path) -> int:
    return int((data / "pg" / "postmaster.pid").read_text().splitlines()[0])


def test_postgres_killed_under_serve_gives_503_then_recovers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(data, port)
    try:
        _wait_ready(proc, url, timeout=300)
        key = (data / "admin.key").read_text().strip()
        h = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=h, timeout=30) as c:
            cube = c.post("/v1/cubes", json={"name": "faults"}).json()
            body = {"memories": [{"content": "before the crash"}]}
            assert c.post(f"/v1/cubes/{cube['id']}/memories", json=body).status_code == 201

            old = _postmaster_pid(data)
            os.kill(old, signal.SIGKILL)
            statuses: list[int] = []
            recovered_at = None
            deadline = time.monotonic() + 90
            started = time.monotonic()
            while time.monotonic() < deadline:
                r = c.get(f"/v1/cubes/{cube['id']}/memories")
                statuses.append(r.status_code)
                assert r.status_code in (200, 503), r.text
                if r.status_code == 503:
                    assert r.headers["Retry-After"].isdigit()
                    assert r.json()["error"]["code"] == "unavailable"
                if r.status_code == 200 and 503 in statuses:
                    recovered_at = time.monotonic() - started
                    break
                time.sleep(0.1)
            assert 503 in statuses, statuses
            assert recovered_at is not None, statuses
            assert _postmaster_pid(data) != old  # serve restarted it by itself
            r = c.post(
                f"/v1/cubes/{cube['id']}/memories",
                json={"memories": [{"content": "after the crash"}]},
            )
            assert r.status_code == 201
            assert c.get("/readyz").status_code == 200
    finally:
        _stop(proc)


def test_kill_9_of_serve_leaves_no_stale_handle(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(data, port)
    try:
        _wait_ready(proc, url, timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid in json.loads((data / "pg" / ".handle_pids.json").read_text())

    proc = _serve(data, port)
    try:
        _wait_ready(proc, url, timeout=300)
        pids = json.loads((data / "pg" / ".handle_pids.json").read_text())
        assert pids == [proc.pid]
        pg = _postmaster_pid(data)
    finally:
        _stop(proc)
    # The clean shutdown stopped Postgres (the dead pid no longer holds it).
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pg) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(pg)
