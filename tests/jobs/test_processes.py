"""The worker as the service runs it: in-process with ``serve``, and ``memsvc worker``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from memsvc.api.app import create_app
from memsvc.cli import worker_hooks
from memsvc.config import REPO_ROOT, JobSettings, Settings
from tests.api.helpers import add, make_cube
from tests.conftest import Service

pytestmark = pytest.mark.anyio


async def wait_enriched(svc: Service, memory_id: str, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await svc.client.get(f"/v1/memories/{memory_id}", headers=svc.auth())
        if got.json()["enrichment_status"] == "done":
            return dict(got.json())
        await asyncio.sleep(0.05)
    raise AssertionError("memory was not enriched in time")


async def test_serve_runs_an_in_process_worker(settings: Settings, runtime: object) -> None:
    cfg = settings.model_copy(update={"jobs": JobSettings(poll_interval_s=0.05)})
    on_start, on_stop = worker_hooks(cfg)
    assert len(on_start) == 1 and len(on_stop) == 1
    app = create_app(cfg, runtime=runtime, on_start=on_start, on_stop=on_stop)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        key = (cfg.data_dir / "admin.key").read_text().strip()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://memsvc") as client:
            svc = Service(app, client, key)
            cube = await make_cube(svc)
            [mem] = await add(svc, cube, {"content": "Caroline adopted a dog named Max."})
            got = await wait_enriched(svc, mem["id"])
            assert got["keywords"][:2] == ["caroline", "max"]  # type: ignore[index]
    off = settings.model_copy(update={"jobs": JobSettings(in_process_worker=False)})
    assert worker_hooks(off) == ((), ())


async def test_memsvc_worker_command_runs_jobs_and_stops_on_sigterm(
    service: Service, database_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "MEMSVC_DATABASE_URL": database_url,
        "MEMSVC_DATA_DIR": str(tmp_path),
        "MEMSVC_JOBS__POLL_INTERVAL_S": "0.05",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "memsvc.cli", "worker", "--concurrency", "2"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        cube = await make_cube(service)
        [mem] = await add(service, cube, {"content": "Melanie paints landscapes at the lake."})
        got = await wait_enriched(service, mem["id"], timeout=60)
        assert got["version"] == 2
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    assert b"running (heuristic mode)" in out and b"stopping" in out
