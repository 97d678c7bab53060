"""Process-wide services (database, models, key cache) shared by the API, admin view and workers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memsvc.config import Settings
from memsvc.llm import LLM
from memsvc.store.db import Database
from memsvc.store.tenants import Principal, authenticate

if TYPE_CHECKING:
    from memsvc.runtime import ModelRuntime


@dataclass
class KeyCache:
    """Verified keys for a few seconds (``Caches.keys``), so auth is not a query on every
    request. A revocation in this process takes effect at once; in other replicas within
    ``memsvc.store.caches.KEY_TTL_S``.
    """

    db: Database

    async def lookup(self, raw: str) -> Principal | None:
        """The principal of a presented key, or None."""
        digest = hashlib.sha256(raw.encode()).hexdigest()
        hit: Principal | None = self.db.caches.keys.get(digest)
        if hit is not None:
            return hit
        async with self.db.transaction() as session:
            principal = await authenticate(session, raw_key=raw)
        if principal is not None:
            self.db.caches.keys[digest] = principal
        return principal

    def forget_all(self) -> None:
        """Drop every cached key (after a revocation)."""
        self.db.caches.keys.clear()


@dataclass
class AppState:
    """Everything a request may need, built once per process."""

    settings: Settings
    db: Database
    runtime: ModelRuntime
    keys: KeyCache
    # The LLM ``ask`` uses in LLM mode (None: heuristic only); jobs build their own.
    llm: LLM | None = None
    ready: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
