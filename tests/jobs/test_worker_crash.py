"""A worker process killed mid-job; a restarted one completes the job, duplicating nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memsvc.config import REPO_ROOT
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import sql, worker_for

pytestmark = pytest.mark.anyio


def spawn(url: str, marker: Path, pause_at: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.worker_proc", url, str(marker), pause_at],
        cwd=REPO_ROOT,
    )


def wait_for(marker: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            return marker.read_text()
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} before the marker")
        time.sleep(0.05)
    raise AssertionError("worker did not reach the marker")


def snapshot(url: str) -> tuple[list[object], list[object]]:
    versions = sql(url, "SELECT memory_id, version, change_kind FROM memory_version ORDER BY 1, 2")
    links = sql(url, "SELECT source_id, target_id, relation, status FROM link ORDER BY 1, 2, 3")
    return versions, links


@pytest.mark.parametrize("stage", ["note", "links"])
async def test_killed_worker_job_completes_once_after_restart(
    service: Service, database_url: str, tmp_path: Path, stage: str
) -> None:
    cube = await make_cube(service)
    a, b, c = await add(
        service,
        cube,
        {"content": "Caroline adopted a golden retriever named Max.", "session_id": "s1"},
        {"content": "Caroline walks Max in the park every morning.", "session_id": "s1"},
        {"content": "Caroline and Max went to the beach with Melanie.", "session_id": "s1"},
    )
    assert await worker_for(service).run_until_idle(max_jobs=2) == 2

    marker = tmp_path / "marker"
    first = spawn(database_url, marker, stage)
    try:
        assert wait_for(marker, first) == stage
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    [(status, attempts, locked_by)] = sql(
        database_url, "SELECT status, attempts, locked_by FROM job WHERE id = 3"
    )
    assert (status, attempts, locked_by) == ("running", 1, f"proc-{first.pid}")
    before = snapshot(database_url)
    enrich_versions = [v for v in before[0] if str(v[0]) == c["id"] and v[2] == "enrich"]
    assert len(enrich_versions) == 1  # the killed worker got that far

    marker.unlink()
    time.sleep(1.2)  # the dead worker's lock expires (lock_timeout_s = 1)
    second = spawn(database_url, marker, "none")
    try:
        assert wait_for(marker, second) == "idle"
        assert second.wait(timeout=30) == 0
    finally:
        if second.poll() is None:
            second.kill()

    [(status, attempts)] = sql(database_url, "SELECT status, attempts FROM job WHERE id = 3")
    assert (status, attempts) == ("done", 2)
    versions, links = snapshot(database_url)
    assert len(versions) == len(set(versions))
    assert [v[2] for v in versions if str(v[0]) == c["id"]] == ["create", "enrich"]
    live = [ln for ln in links if ln[3] == "active"]
    assert len(live) == len(set(live))
    assert (c["id"], b["id"], "follows") in {(str(s), str(t), r) for s, t, r, _ in live}
    if stage == "links":
        # Everything was committed before the kill: the re-run changed nothing.
        assert (versions, links) == before
    [(state,)] = sql(database_url, "SELECT enrichment_status FROM memory WHERE id = :i", i=c["id"])
    assert state == "done"
    assert a["id"] != b["id"]
