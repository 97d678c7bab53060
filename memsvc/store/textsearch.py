"""Full-text conditions that can use the GIN index under row-level security.

With the tenant policy in force, Postgres evaluates it before any condition that is not
leakproof, and tsvector's ``@@`` is not: ``tsv @@ query`` then never drives the GIN index
and every lexical query reads the whole cube. ``cube_match`` asks the
``memsvc_fulltext_ids`` function (migration 0007) instead, which uses the index as the
table owner and only answers for the transaction's own tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from memsvc.store.models import Memory

# A condition on ``Memory`` rows for a tsquery expression.
TextMatch = Callable[[Any], Any]


def plain_match(tsquery: Any) -> Any:
    """``tsv @@ tsquery``: fine where the scope's own index narrows the rows first."""
    return Memory.tsv.op("@@")(tsquery)


def cube_match(tenant_id: uuid.UUID, cube_id: uuid.UUID) -> TextMatch:
    """Memories of the cube whose full text matches, found through the GIN index."""

    def match(tsquery: Any) -> Any:
        return Memory.id.in_(select(func.memsvc_fulltext_ids(tenant_id, cube_id, tsquery)))

    return match
