"""A throwaway memsvc instance for benchmarks: embedded Postgres in a temp dir, uvicorn
in a background thread, the first admin key read back from the data dir."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from memsvc.runtime import ModelRuntime
    from memsvc.state import AppState

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class Instance:
    url: str
    api_key: str
    data_dir: Path
    database_url: str | None
    runtime: ModelRuntime
    # The in-process service's state (a benchmark may give it a scripted LLM).
    state: AppState


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_instance(*, backend: str | None = None, worker: bool = False) -> Iterator[Instance]:
    """Start memsvc on a loopback port over a fresh embedded database; stop it after.
    ``worker``: with the in-process job worker, as ``memsvc serve`` runs it (enrichment and
    index jobs then run beside the requests); without it (the default) jobs wait."""
    import uvicorn

    from memsvc.api.app import create_app
    from memsvc.api.protocol import with_header_timeout
    from memsvc.cli import worker_hooks
    from memsvc.config import Settings
    from memsvc.runtime import build_runtime

    with tempfile.TemporaryDirectory(prefix="memsvc-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", print_admin_key=False, log_level="warning")
        # The environment's model settings (``MEMSVC_MODELS__...``), as ``memsvc serve``.
        runtime = build_runtime(settings.models, backend=backend)  # type: ignore[arg-type]
        on_start, on_stop = worker_hooks(settings) if worker else ((), ())
        app = create_app(settings, runtime=runtime, on_start=on_start, on_stop=on_stop)
        port = _free_port()
        # The protocol and event loop ``memsvc serve`` runs with (httptools, uvloop).
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                http=with_header_timeout(settings.limits.header_timeout_s),
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 180
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("memsvc did not start")
            time.sleep(0.1)
        key = (settings.data_dir / "admin.key").read_text().strip()
        state = app.state.memsvc
        db_url = state.db.url
        try:
            yield Instance(
                f"http://127.0.0.1:{port}", key, settings.data_dir, db_url, runtime, state
            )
        finally:
            server.should_exit = True
            thread.join(timeout=60)
            runtime.close()
