"""The process state of one ``Database``: every cache in one place, with one owner.

Each cache is bounded and expires on its own (cachetools); the ``Caches`` object belongs to
the ``Database`` that built it (so two apps in one process share nothing) and reaches code
that holds only a session through ``caches_of(session)``. Shutting a database down waits
for its own background refreshes, and nobody else's.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache, TLRUCache, TTLCache
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.vector_cache import VectorCache

# Verified API keys: a revocation in another replica takes effect within this many seconds.
KEY_TTL_S = 10.0
# Scope sizes and mean lengths for BM25 (keyed with the cube's write generation, so this
# process's own writes are seen at once; other processes' within the TTL).
SCOPE_STATS_TTL_S = 30.0
# A cube that is not promoted to the HNSW index is re-checked after this many seconds (a
# promotion is never undone, so a yes is kept until evicted).
NOT_INDEXED_TTL_S = 10.0
# A cube's promotion is asked for at most once per this many seconds per process.
PROMOTION_ASK_EVERY_S = 60.0
# BM25 lexicons of large scopes: a few MB each.
LEXICONS_MAX = 64


def _indexed_ttu(_key: uuid.UUID, indexed: bool, now: float) -> float:
    return math.inf if indexed else now + NOT_INDEXED_TTL_S


@dataclass
class Caches:
    """The caches of one process's database handle."""

    keys: TTLCache[str, Any] = field(default_factory=lambda: TTLCache(10_000, KEY_TTL_S))
    # Per-cube write counters; the stats cache keys on them.
    cube_generation: LRUCache[uuid.UUID, int] = field(default_factory=lambda: LRUCache(100_000))
    scope_stats: TTLCache[tuple[Any, ...], Any] = field(
        default_factory=lambda: TTLCache(10_000, SCOPE_STATS_TTL_S)
    )
    ann_indexed: TLRUCache[uuid.UUID, bool] = field(
        default_factory=lambda: TLRUCache(100_000, _indexed_ttu)
    )
    promotion_asked: TTLCache[uuid.UUID, bool] = field(
        default_factory=lambda: TTLCache(100_000, PROMOTION_ASK_EVERY_S)
    )
    # (lexicon, fresh until): answered past its time while a refresh runs (see lexicon.py).
    lexicons: LRUCache[tuple[str, str], tuple[Any, float]] = field(
        default_factory=lambda: LRUCache(LEXICONS_MAX)
    )
    lexicon_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    lexicon_refreshing: set[tuple[str, str]] = field(default_factory=set)
    # Cubes' vectors for exact scoring in the process (``memsvc.store.vector_cache``).
    vectors: VectorCache = field(default_factory=VectorCache)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Searches in flight in this process (``memsvc.retrieval.service`` counts them).
    searching: int = 0

    def touch_cube(self, cube_id: uuid.UUID) -> None:
        """Note that the cube's memories changed."""
        self.cube_generation[cube_id] = self.cube_generation.get(cube_id, 0) + 1

    def generation(self, cube_id: uuid.UUID) -> int:
        """How many times this process changed the cube's memories (while remembered)."""
        return self.cube_generation.get(cube_id, 0)

    @contextmanager
    def search_in_flight(self) -> Iterator[None]:
        """Count a search as in flight while the block runs (``searching``)."""
        self.searching += 1
        try:
            yield
        finally:
            self.searching -= 1

    def spawn(self, task: asyncio.Task[None]) -> None:
        """Own a background task (awaited by ``wait``)."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def wait(self) -> None:
        """Wait until this handle's background tasks are done (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def clear(self) -> None:
        """Forget everything (after bulk changes made by other means)."""
        for cache in (
            self.keys,
            self.cube_generation,
            self.scope_stats,
            self.ann_indexed,
            self.promotion_asked,
            self.lexicons,
        ):
            cache.clear()
        self.vectors.clear()


def caches_of(session: AsyncSession) -> Caches:
    """The caches of the database that opened ``session`` (a session opened some other way
    gets caches of its own: correct, just not shared)."""
    caches = session.info.get("caches")
    if caches is None:
        caches = session.info["caches"] = Caches()
    assert isinstance(caches, Caches)
    return caches
