"""Memory filters as SQL: the one translation of ``MemoryFilters`` (lists, the admin table)
and ``SearchFilters`` (search) into where-clauses on ``Memory``. Summaries are left out
unless the filters ask for them (``include_summaries``, or a kind filter naming "summary")."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_

from memsvc.schemas import MemoryFilters, SearchFilters
from memsvc.schemas.memories import SUMMARY_KIND
from memsvc.store.models import Memory

VISIBLE = ("active", "deleted")  # what is not erased


def _statuses(f: MemoryFilters | SearchFilters) -> Sequence[str]:
    if isinstance(f, MemoryFilters) and f.status:
        return (f.status,)
    return VISIBLE if f.include_deleted else ("active",)


def _one_of(stmt: Select[Any], col: Any, values: Sequence[Any] | None) -> Select[Any]:
    if not values:
        return stmt
    return stmt.where(col == values[0]) if len(values) == 1 else stmt.where(col.in_(values))


def apply_filters(stmt: Select[Any], f: MemoryFilters | SearchFilters) -> Select[Any]:
    """``stmt`` (a select over ``Memory``) restricted to what the filters let through."""
    if isinstance(f, SearchFilters):
        kinds, layers, tags = f.kinds, f.layers, f.tags
    else:
        kinds = [f.kind] if f.kind is not None else None
        layers = [f.layer] if f.layer is not None else None
        tags = f.tag
    stmt = _one_of(stmt, Memory.status, _statuses(f))
    if not f.include_summaries and SUMMARY_KIND not in (kinds or ()):
        stmt = stmt.where(Memory.kind != SUMMARY_KIND)
    stmt = _one_of(stmt, Memory.kind, kinds)
    stmt = _one_of(stmt, Memory.layer, layers)
    if tags:
        stmt = stmt.where(Memory.tags.overlap(tags))
    for col, val in (
        (Memory.user_id, f.user_id),
        (Memory.agent_id, f.agent_id),
        (Memory.session_id, f.session_id),
    ):
        if val is not None:
            stmt = stmt.where(col == val)
    if f.created_after:
        stmt = stmt.where(Memory.created_at >= f.created_after)
    if f.created_before:
        stmt = stmt.where(Memory.created_at < f.created_before)
    return stmt


def valid_at(at: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """A memory is valid at ``at``: its ``valid_from`` reached and its ``valid_to`` not."""
    return and_(
        or_(Memory.valid_from.is_(None), Memory.valid_from <= at),
        or_(Memory.valid_to.is_(None), Memory.valid_to > at),
    )


def the_memory(tenant_id: uuid.UUID, memory_id: uuid.UUID) -> tuple[ColumnElement[bool], ...]:
    """Where-clauses of one memory of the tenant; erased ones are gone (404)."""
    return Memory.id == memory_id, Memory.tenant_id == tenant_id, Memory.status != "erased"
