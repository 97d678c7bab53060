"""Micro-batching: concurrent requests from any thread or event loop share model calls."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from memsvc.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
Array = npt.NDArray[np.float32]
BatchFn = Callable[[list[T]], Array]


@dataclass(eq=False)
class _Job(Generic[T]):
    items: list[T]
    future: cf.Future[Array]
    enqueued_at: float
    taken: int = 0
    parts: list[Array] = field(default_factory=list)
    done_rows: int = 0


@dataclass(eq=False)
class _Batch(Generic[T]):
    items: list[T]
    spans: list[tuple[_Job[T], int, int]]


def _settle(future: cf.Future[Array], result: Array | None, error: BaseException | None) -> None:
    # A future may already be settled (cancelled by its caller, failed by close()).
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]
    except cf.InvalidStateError:
        pass


def by_length(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Indices of texts of ``lengths``, longest first, cut into chunks of at most ``size``: a
    model batch pads every text to its longest, so texts of similar length waste less. The
    caller puts each chunk's rows back at the chunk's indices."""
    if size < 1:
        raise ValueError("size must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


# What a model call costs on CPU, in the units of ``padded_batches``' cost model (about a
# tenth of a millisecond: MiniLM under ONNX Runtime on 2 cores reads a token of a short text
# in about 0.1 ms, and a call costs about 4 ms of its own).
CPU_CALL_COST = 40.0
# Padded tokens one CPU model call may hold: a batch of long texts is no faster per text
# than one text at a time (256 tokens: 38.8 ms a text alone, 40.2 in fours, 43.5 in
# sixteens), and a smaller one leaves room for the short texts to go apart.
CPU_MAX_TOKENS = 2048


def padded_batches(
    lengths: Sequence[int],
    *,
    max_items: int,
    max_tokens: int = CPU_MAX_TOKENS,
    call_cost: float = CPU_CALL_COST,
) -> list[list[int]]:
    """Indices of texts of ``lengths`` (tokens) cut into model batches, longest first, so the
    padding a batch adds costs less than the calls it saves.

    A batch pads every text to its longest, and a model call has a cost of its own. Sorted
    longest first, the cut is chosen to minimise the batches' total cost, each ``call_cost``
    plus, per text, ``L + L * L / 400`` for the batch's longest length ``L`` (attention grows
    with the square of the length): measured on CPU, a text of 8 tokens costs about 1 ms in
    a batch of 64 and 5 ms alone; one of 250, 39-46 ms either way. Cutting by count alone,
    a long memory's 256-token windows and its 20-token sentences shared one batch: 35 texts
    of 1,686 tokens took 1,863 ms padded to 256, 343 ms one by one. Each batch holds at most
    ``max_items`` texts and ``max_tokens`` padded tokens. The caller puts each batch's rows
    back at its indices."""
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    size = [max(int(lengths[i]), 1) for i in order]
    n = len(order)
    # best[j]: the cheapest cut of the first j texts; start[j]: where its last batch starts.
    best = [0.0] + [math.inf] * n
    start = [0] * (n + 1)
    for i in range(n):  # a batch starting at text i, led by the longest of its texts
        lead = size[i]
        per_text = lead + lead * lead / 400
        room = max(1, min(max_items, max_tokens // lead))
        for j in range(i + 1, min(n, i + room) + 1):
            cost = best[i] + call_cost + (j - i) * per_text
            if cost < best[j]:
                best[j], start[j] = cost, i
    cuts = []
    j = n
    while j > 0:
        cuts.append(order[start[j] : j])
        j = start[j]
    return cuts[::-1]


class MicroBatcher(Generic[T]):
    """Runs a sync batch function on one worker thread, coalescing concurrent requests.

    ``fn`` maps a list of items to an array whose first axis has one row per item, and must
    answer ``[]`` cheaply (it is then called in the caller's thread). The worker waits at most
    ``wait_ms`` after the oldest queued request for more to arrive, calls ``fn`` on up to
    ``batch_size`` items (large requests are split across calls) and hands each caller its rows.
    """

    def __init__(
        self,
        fn: BatchFn[T],
        *,
        batch_size: int = 64,
        wait_ms: float = 2.0,
        name: str = "memsvc-batcher",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._fn = fn
        self.batch_size = batch_size
        self.wait_s = max(0.0, wait_ms) / 1000.0
        self.name = name
        self._cond = threading.Condition()
        self._pending: deque[_Job[T]] = deque()
        self._queued = 0  # items waiting, not yet handed to fn
        self._closed = False
        self._thread: threading.Thread | None = None
        # One model call at a time: the worker and run_sync() share the cores.
        self._model_lock = threading.Lock()
        self.calls = 0  # fn calls made by the worker (for tests and metrics)

    def submit(self, items: Sequence[T]) -> cf.Future[Array]:
        """Queue items from any thread; the future resolves to their rows, in order."""
        future: cf.Future[Array] = cf.Future()
        batch = list(items)
        if not batch:
            future.set_running_or_notify_cancel()
            future.set_result(self._fn([]))
            return future
        with self._cond:
            if self._closed:
                raise ServiceUnavailable(f"{self.name} is closed")
            self._pending.append(_Job(batch, future, time.monotonic()))
            self._queued += len(batch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return future

    async def run(self, items: Sequence[T]) -> Array:
        """Rows for items, computed on the worker thread; never blocks the event loop."""
        return await asyncio.wrap_future(self.submit(items))

    def run_sync(self, items: Sequence[T]) -> Array:
        """Rows for items computed in this thread, bypassing the queue (CLI, bench)."""
        with self._model_lock:
            return self._fn(list(items))

    def close(self) -> None:
        """Stop the worker after its current call; queued requests fail with ServiceUnavailable."""
        with self._cond:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            self._queued = 0
            self._cond.notify_all()
            thread = self._thread
        for job in dropped:
            _settle(job.future, None, ServiceUnavailable(f"{self.name} is closed"))
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                with self._model_lock:
                    out = self._fn(batch.items)
                self.calls += 1
                if len(out) != len(batch.items):
                    raise ValueError(f"{self.name}: {len(batch.items)} items gave {len(out)} rows")
            # Named boundary: whatever the model raised belongs to the callers in this batch.
            except Exception as exc:
                logger.warning("%s: batch of %d failed", self.name, len(batch.items), exc_info=True)
                self._fail(batch, exc)
                continue
            self._deliver(batch, out)

    def _next_batch(self) -> _Batch[T] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            deadline = self._pending[0].enqueued_at + self.wait_s
            while self._queued < self.batch_size and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._closed:
                return None
            return self._take()

    def _take(self) -> _Batch[T]:
        batch: _Batch[T] = _Batch([], [])
        while self._pending and len(batch.items) < self.batch_size:
            job = self._pending[0]
            if job.taken == 0 and not job.future.set_running_or_notify_cancel():
                # Cancelled by its caller before any work: drop it.
                self._pending.popleft()
                self._queued -= len(job.items)
                continue
            n = min(len(job.items) - job.taken, self.batch_size - len(batch.items))
            start = len(batch.items)
            batch.items.extend(job.items[job.taken : job.taken + n])
            batch.spans.append((job, start, start + n))
            job.taken += n
            self._queued -= n
            if job.taken == len(job.items):
                self._pending.popleft()
        return batch

    def _deliver(self, batch: _Batch[T], out: Array) -> None:
        finished: list[_Job[T]] = []
        for job, start, stop in batch.spans:
            job.parts.append(out[start:stop])
            job.done_rows += stop - start
            if job.done_rows == len(job.items):
                finished.append(job)
        for job in finished:
            rows = job.parts[0] if len(job.parts) == 1 else np.concatenate(job.parts)
            job.parts = []
            # Copy so a caller's rows do not keep the whole batch alive or alias other callers.
            _settle(job.future, np.array(rows, copy=True), None)

    def _fail(self, batch: _Batch[T], error: Exception) -> None:
        jobs = {id(job): job for job, _, _ in batch.spans}
        with self._cond:
            # A request split across calls is failed once; its later chunks are dropped.
            for job in jobs.values():
                if job in self._pending:
                    self._pending.remove(job)
                    self._queued -= len(job.items) - job.taken
        for job in jobs.values():
            _settle(job.future, None, error)
