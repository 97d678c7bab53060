"""Per-key rate limits: a token bucket per API key, ``429 rate_limited`` with ``Retry-After``.

Each key may make ``limits.rate_per_s`` requests a second on average, in bursts of up to
``limits.rate_burst`` (0 turns the limit off). The buckets live in the process: with
several API replicas each enforces the limit on its own share of the traffic.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field

from memsvc.errors import RateLimited


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """Token buckets keyed by API key id."""

    rate_per_s: float
    burst: float
    _buckets: dict[uuid.UUID, _Bucket] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def take(self, key: uuid.UUID, *, now: float | None = None) -> float:
        """Spend one token; 0 when allowed, else the seconds until one is available."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        cap = max(self.burst, 1.0)
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(tokens=cap, at=now)
            if len(self._buckets) > 100_000:  # forget idle keys (full buckets anyway)
                self._buckets = {key: b}
        b.tokens = min(cap, b.tokens + (now - b.at) * self.rate_per_s)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate_per_s

    def check(self, key: uuid.UUID) -> None:
        """Raise ``RateLimited`` (429, ``Retry-After``) when ``key`` is over its rate."""
        wait = self.take(key)
        if wait > 0:
            secs = max(1, math.ceil(wait))
            raise RateLimited(
                f"rate limit of {self.rate_per_s:g} requests/s exceeded; retry in {secs} s",
                detail={"retry_after_s": secs, "limit_per_s": self.rate_per_s},
            )
