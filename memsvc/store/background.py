"""A task a part of the service runs beside it, for as long as the app runs."""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    """One asyncio task: ``start`` creates it from ``run`` (once), ``stop`` cancels it and
    waits for it to end. Subclasses give ``run`` and ``task_name``."""

    task_name = "memsvc-background"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self.task_name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
