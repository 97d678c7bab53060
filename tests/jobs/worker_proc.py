"""A worker in its own process, for the crash test.

    python -m tests.jobs.worker_proc DATABASE_URL MARKER_FILE PAUSE_AT

PAUSE_AT is an enrichment stage (``note``, ``links``) where the process writes MARKER_FILE
and hangs (to be SIGKILLed there), or ``none``: run until no enrich job is left open.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


async def main(url: str, marker: Path, pause_at: str) -> None:
    from sqlalchemy import func, select

    import memsvc.graph.enrich as enrich
    from memsvc.config import JobSettings, Settings
    from memsvc.jobs.worker import Worker
    from memsvc.store.db import Database
    from memsvc.store.models import Job

    async def pause(stage: str) -> None:
        if stage == pause_at:
            marker.write_text(stage)
            await asyncio.sleep(3600)

    enrich._checkpoint = pause  # type: ignore[assignment]
    settings = Settings(
        database_url=url,  # type: ignore[arg-type]
        jobs=JobSettings(lock_timeout_s=1.0, poll_interval_s=0.05, backoff_base_s=0.0),
    )
    db = Database.connect(url)
    worker = Worker(db, settings, llm=None, worker_id=f"proc-{os.getpid()}")
    try:
        for _ in range(400):
            await worker.run_until_idle()
            async with db.transaction() as s:
                open_jobs = await s.execute(
                    select(func.count()).where(
                        Job.status.in_(("queued", "running")), Job.kind.in_(list(worker.handlers))
                    )
                )
                if open_jobs.scalar_one() == 0:
                    break
            await asyncio.sleep(0.05)
        marker.write_text("idle")
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
