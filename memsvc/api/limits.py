"""Per-key rate limits and per-tenant daily write quotas (``429`` with ``Retry-After``).

Each key may make ``limits.rate_per_s`` requests a second on average, in bursts of up to
``limits.rate_burst`` (0 turns the limit off); a tenant's overrides (``tenant_limit``,
``PUT /v1/tenants/{id}/limits``) apply to each of its keys, read at most ``TTL_S`` seconds
late. The buckets live in the process: with several API replicas each enforces the limit
on its own share of the traffic. The daily write quota (memories created per tenant and
UTC day) is counted in the database, so it holds across replicas.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from memsvc.errors import RateLimited
from memsvc.schemas import EffectiveLimits

TTL_S = 5.0


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

    def take(
        self,
        key: uuid.UUID,
        *,
        now: float | None = None,
        rate_per_s: float | None = None,
        burst: float | None = None,
    ) -> float:
        """Spend one token; 0 when allowed, else the seconds until one is available.
        ``rate_per_s``/``burst`` override the limiter's own (a tenant's limits)."""
        rate = self.rate_per_s if rate_per_s is None else rate_per_s
        if rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        cap = max(self.burst if burst is None else burst, 1.0)
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(tokens=cap, at=now)
            if len(self._buckets) > 100_000:  # forget idle keys (full buckets anyway)
                self._buckets = {key: b}
        b.tokens = min(cap, b.tokens + (now - b.at) * rate)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / rate

    def check(
        self, key: uuid.UUID, *, rate_per_s: float | None = None, burst: float | None = None
    ) -> None:
        """Raise ``RateLimited`` (429, ``Retry-After``) when ``key`` is over its rate."""
        wait = self.take(key, rate_per_s=rate_per_s, burst=burst)
        if wait > 0:
            rate = self.rate_per_s if rate_per_s is None else rate_per_s
            secs = max(1, math.ceil(wait))
            raise RateLimited(
                f"rate limit of {rate:g} requests/s exceeded; retry in {secs} s",
                detail={"retry_after_s": secs, "limit_per_s": rate},
            )


@dataclass
class TenantLimitCache:
    """Each tenant's effective limits, kept ``ttl_s`` seconds."""

    ttl_s: float = TTL_S
    _entries: dict[uuid.UUID, tuple[float, EffectiveLimits]] = field(default_factory=dict)

    def get(self, tenant_id: uuid.UUID) -> EffectiveLimits | None:
        hit = self._entries.get(tenant_id)
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1]

    def put(self, tenant_id: uuid.UUID, limits: EffectiveLimits) -> None:
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[tenant_id] = (time.monotonic() + self.ttl_s, limits)

    def forget(self, tenant_id: uuid.UUID) -> None:
        self._entries.pop(tenant_id, None)


def utc_today(now: datetime | None = None) -> date:
    """The current UTC day (the quota's day)."""
    return (now or datetime.now(UTC)).date()


def quota_exceeded(quota: int, n: int, *, now: datetime | None = None) -> RateLimited:
    """``429 quota_exceeded``, to retry at the next midnight UTC."""
    now = now or datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    secs = max(1, math.ceil((midnight - now).total_seconds()))
    return RateLimited(
        f"daily write quota of {quota} memories reached (this request: {n}); "
        f"retry after midnight UTC, in {secs} s",
        code="quota_exceeded",
        detail={"retry_after_s": secs, "daily_write_quota": quota},
    )
