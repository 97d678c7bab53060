"""The per-tenant LLM budget: calls and tokens per clock hour, counted in ``llm_usage``.

:class:`TenantBudget` is the ``memsvc.llm.Budget`` of one tenant's job: ``reserve``
counts a call in the current hour's row unless the hour's calls or tokens already reached
their limit (one atomic upsert, so concurrent workers cannot overshoot the call limit),
``spend`` adds the tokens the call used. A limit of 0 means unlimited (calls are still
counted).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text

from memsvc.config import LLMSettings
from memsvc.store.db import Database

_RESERVE = text(
    """
    INSERT INTO llm_usage AS u (tenant_id, hour, calls, tokens)
    VALUES (:t, date_trunc('hour', now(), 'UTC'), 1, 0)
    ON CONFLICT (tenant_id, hour) DO UPDATE SET calls = u.calls + 1
    WHERE (:calls = 0 OR u.calls < :calls) AND (:tokens = 0 OR u.tokens < :tokens)
    RETURNING u.calls
    """
)
_SPEND = text(
    """
    UPDATE llm_usage SET tokens = tokens + :n
    WHERE tenant_id = :t AND hour = date_trunc('hour', now(), 'UTC')
    """
)


class TenantBudget:
    """One tenant's hourly LLM budget (``llm.budget_calls_per_hour`` / ``_tokens_per_hour``)."""

    def __init__(
        self, db: Database, tenant_id: uuid.UUID, *, calls_per_hour: int, tokens_per_hour: int
    ) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.calls_per_hour = max(calls_per_hour, 0)
        self.tokens_per_hour = max(tokens_per_hour, 0)

    @classmethod
    def of(cls, db: Database, tenant_id: uuid.UUID, settings: LLMSettings) -> TenantBudget:
        """The budget the settings give one tenant."""
        return cls(
            db,
            tenant_id,
            calls_per_hour=settings.budget_calls_per_hour,
            tokens_per_hour=settings.budget_tokens_per_hour,
        )

    async def reserve(self) -> bool:
        async with self.db.transaction() as s:
            row = (
                await s.execute(
                    _RESERVE,
                    {
                        "t": self.tenant_id,
                        "calls": self.calls_per_hour,
                        "tokens": self.tokens_per_hour,
                    },
                )
            ).first()
        return row is not None

    async def spend(self, tokens: int) -> None:
        if tokens <= 0:
            return
        async with self.db.transaction() as s:
            await s.execute(_SPEND, {"t": self.tenant_id, "n": tokens})
