"""MicroBatcher: each caller gets its own rows, concurrent callers share model calls."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from memsvc.errors import ServiceUnavailable
from memsvc.runtime import FakeEmbedder, MicroBatcher, by_length
from memsvc.runtime.base import Vectors
from memsvc.runtime.batching import padded_batches


class CountingEmbedder:
    """FakeEmbedder that records the size of every call and can be slowed down."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.inner = FakeEmbedder(dim=16)
        self.sizes: list[int] = []
        self.delay_s = delay_s

    def __call__(self, texts: list[str]) -> Vectors:
        if texts:
            self.sizes.append(len(texts))
        time.sleep(self.delay_s)
        if "boom" in texts:
            raise RuntimeError("model exploded")
        return self.inner.embed(texts)


@pytest.fixture()
def model() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture()
def batcher(model: CountingEmbedder) -> Iterator[MicroBatcher[str]]:
    b = MicroBatcher(model, batch_size=8, wait_ms=20.0)
    yield b
    b.close()


def test_concurrent_callers_get_their_own_rows(
    model: CountingEmbedder, batcher: MicroBatcher[str]
) -> None:
    requests = [[f"caller {i} text {j}" for j in range(i % 3 + 1)] for i in range(20)]

    async def main() -> list[Vectors]:
        return await asyncio.gather(*(batcher.run(r) for r in requests))

    results = asyncio.run(main())
    for request, rows in zip(requests, results, strict=True):
        np.testing.assert_array_equal(rows, model.inner.embed(request))
    assert sum(model.sizes) == sum(len(r) for r in requests)
    assert max(model.sizes) <= 8
    assert batcher.calls == len(model.sizes) < len(requests)


def test_large_request_is_split_into_batches(
    model: CountingEmbedder, batcher: MicroBatcher[str]
) -> None:
    texts = [f"text number {i}" for i in range(19)]
    rows = asyncio.run(batcher.run(texts))
    np.testing.assert_array_equal(rows, model.inner.embed(texts))
    assert model.sizes == [8, 8, 3]


def test_error_reaches_only_its_batch_and_worker_survives(
    model: CountingEmbedder, batcher: MicroBatcher[str]
) -> None:
    with pytest.raises(RuntimeError, match="exploded"):
        asyncio.run(batcher.run(["boom"]))
    np.testing.assert_array_equal(asyncio.run(batcher.run(["ok"])), model.inner.embed(["ok"]))


def test_split_request_failing_midway_fails_once() -> None:
    model = CountingEmbedder()
    b = MicroBatcher(model, batch_size=2, wait_ms=0.0)
    try:
        with pytest.raises(RuntimeError):
            b.submit(["a", "b", "boom", "c", "d", "e"]).result(timeout=10)
        assert model.sizes == [2, 2]  # the chunk after the failure is never run
        assert b.submit(["x"]).result(timeout=10).shape == (1, 16)
    finally:
        b.close()


def test_callers_from_other_threads_and_loops(
    model: CountingEmbedder, batcher: MicroBatcher[str]
) -> None:
    results: dict[int, Vectors] = {}

    def worker(i: int) -> None:
        results[i] = asyncio.run(batcher.run([f"thread {i}"]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(6):
        np.testing.assert_array_equal(results[i], model.inner.embed([f"thread {i}"]))


def test_cancelled_caller_does_not_disturb_others() -> None:
    model = CountingEmbedder(delay_s=0.05)
    b = MicroBatcher(model, batch_size=1, wait_ms=0.0)
    try:

        async def main() -> Vectors:
            first = asyncio.ensure_future(b.run(["first"]))
            doomed = asyncio.ensure_future(b.run(["doomed"]))
            last = asyncio.ensure_future(b.run(["last"]))
            await asyncio.sleep(0.01)  # "first" is running, the others are queued
            doomed.cancel()
            await first
            return await last

        np.testing.assert_array_equal(asyncio.run(main()), model.inner.embed(["last"]))
        assert model.sizes == [1, 1]
    finally:
        b.close()


def test_event_loop_is_not_blocked() -> None:
    b = MicroBatcher(CountingEmbedder(delay_s=0.2), batch_size=4, wait_ms=0.0)
    try:

        async def main() -> int:
            ticks = 0
            task = asyncio.ensure_future(b.run(["slow"]))
            while not task.done():
                ticks += 1
                await asyncio.sleep(0.01)
            return ticks

        assert asyncio.run(main()) >= 5
    finally:
        b.close()


def test_sync_path_and_empty_input(model: CountingEmbedder, batcher: MicroBatcher[str]) -> None:
    np.testing.assert_array_equal(batcher.run_sync(["a", "b"]), model.inner.embed(["a", "b"]))
    assert batcher.calls == 0
    assert asyncio.run(batcher.run([])).shape == (0, 16)


def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    b = MicroBatcher(CountingEmbedder(delay_s=0.1), batch_size=1, wait_ms=0.0)
    running = b.submit(["running"])
    time.sleep(0.02)
    queued = b.submit(["queued"])
    b.close()
    assert running.result(timeout=5).shape == (1, 16)
    with pytest.raises(ServiceUnavailable):
        queued.result(timeout=5)
    with pytest.raises(ServiceUnavailable):
        b.submit(["late"])


def test_by_length_cuts_longest_first_and_rows_go_back_in_order() -> None:
    texts = ["a", "ccc", "bb", "dddd", "ee", "f", "gggggg"]
    chunks = by_length([len(t) for t in texts], 3)
    # Longest first, ties in their order; every index exactly once.
    assert chunks == [[6, 3, 1], [2, 4, 0], [5]]
    model = FakeEmbedder(dim=16)
    rows = np.empty((len(texts), 16), dtype=np.float32)
    for chunk in chunks:
        rows[chunk] = model.embed([texts[i] for i in chunk])
    np.testing.assert_array_equal(rows, model.embed(texts))
    assert by_length([], 3) == []
    with pytest.raises(ValueError):
        by_length([1], 0)


def test_padded_batches_keep_long_windows_apart_from_short_sentences() -> None:
    # A long memory's own text and windows (256 tokens) and its sentences (12-30 tokens).
    lengths = [256, 20, 256, 14, 256, 30, 256, 12] + [18] * 27
    batches = padded_batches(lengths, max_items=64)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each once
    for b in batches:
        lead = max(lengths[i] for i in b)
        assert len(b) * lead <= 2048
        # Padding a sentence to a window's length costs more than a call of its own.
        assert lead <= 30 or all(lengths[i] == 256 for i in b)
    short = [b for b in batches if max(lengths[i] for i in b) <= 30]
    assert len(short) <= 2  # the 31 short texts share calls: the 30 and 20 may go apart
    # Longest first within a batch, and rows go back to their texts' places.
    assert all(lengths[b[0]] == max(lengths[i] for i in b) for b in batches)


def test_padded_batches_limits() -> None:
    assert padded_batches([], max_items=8) == []
    same = padded_batches([5] * 20, max_items=8)
    assert len(same) == 3 and max(map(len, same)) == 8  # as few calls as max_items allows
    assert sorted(i for b in same for i in b) == list(range(20))
    # A text longer than the token cap still gets its own batch.
    assert padded_batches([4000, 3], max_items=8, max_tokens=2048) == [[0], [1]]
    # Calls that cost far more than padding (CUDA): as few batches as fit.
    assert len(padded_batches([256, 3] * 8, max_items=64, max_tokens=64 * 512, call_cost=1e6)) == 1
    with pytest.raises(ValueError):
        padded_batches([1], max_items=0)
