"""Synthetic LoCoMo-like sentences and the timing probe behind ``memsvc models``."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TypedDict

import numpy as np

_NAMES = ("Caroline", "Melanie", "Jon", "Gina", "John", "Maria", "Tim", "Audrey", "Nate", "Joanna")
_VERBS = ("went to", "talked about", "signed up for", "remembered", "planned", "loved", "visited")
_THINGS = (
    "the LGBTQ support group",
    "a pottery class",
    "the charity race",
    "her adoption interview",
    "a camping trip with the kids",
    "the new dance studio",
    "an old friend from school",
    "the art show downtown",
    "a counseling workshop",
    "the beach at sunrise",
)
_WHEN = ("yesterday", "last weekend", "on 8 May 2023", "two weeks ago", "this morning", "in June")
_TAILS = (
    "and felt inspired.",
    "because it means a lot to them.",
    "with the whole family.",
    "and wants to do it again.",
    "after a long week at work.",
    "",
)


class SelfTestReport(TypedDict):
    """What ``ModelRuntime.self_test`` measured, direct calls without the micro-batcher."""

    texts: int
    batch_size: int
    embed_texts_per_s: float
    query_latency_ms_p50: float
    query_latency_ms_p95: float
    rerank_pairs_per_s: float | None


def synthetic_sentences(n: int, *, seed: int = 0) -> list[str]:
    """Short conversational facts in the style of LoCoMo turns, deterministic for a seed."""
    rng = random.Random(seed)
    return [
        " ".join(
            part
            for part in (
                rng.choice(_NAMES),
                rng.choice(_VERBS),
                rng.choice(_THINGS),
                rng.choice(_WHEN),
                rng.choice(_TAILS),
            )
            if part
        )
        for _ in range(n)
    ]


def throughput(fn: Callable[[list[str]], object], texts: Sequence[str], batch_size: int) -> float:
    """Items per second for ``fn`` over texts in batches of ``batch_size`` (after one warm-up)."""
    items = list(texts)
    fn(items[:batch_size])
    start = time.perf_counter()
    for i in range(0, len(items), batch_size):
        fn(items[i : i + batch_size])
    return len(items) / max(time.perf_counter() - start, 1e-9)


def latencies_ms(fn: Callable[[list[str]], object], queries: Sequence[str]) -> list[float]:
    """Milliseconds per single-item call, one per query (after one warm-up)."""
    fn([queries[0]])
    out: list[float] = []
    for query in queries:
        start = time.perf_counter()
        fn([query])
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
