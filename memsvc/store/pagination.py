"""Keyset pagination over ``(created_at, id)``: stable under concurrent inserts, no caps."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import BadRequest

S = TypeVar("S", bound=Select[Any])


def encode_cursor(created_at: datetime, row_id: uuid.UUID | int) -> str:
    """An opaque cursor for the row after which the next page starts."""
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; a malformed cursor is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(at), str(row_id)
    except (ValueError, TypeError) as exc:
        raise BadRequest("malformed cursor", code="invalid_cursor") from exc


def after_cursor(stmt: S, created_col: Any, id_col: Any, cursor: str | None) -> S:
    """Restrict ``stmt`` to rows after ``cursor`` and order it by the keyset."""
    if cursor:
        at, row_id = decode_cursor(cursor)
        key: Any = row_id
        if isinstance(id_col.type.python_type, type) and id_col.type.python_type is int:
            key = int(row_id)
        stmt = stmt.where(or_(created_col > at, and_(created_col == at, id_col > key)))
    return stmt.order_by(created_col, id_col)


class _Keyed(Protocol):
    created_at: datetime
    id: Any


R = TypeVar("R", bound=_Keyed)


async def fetch_page(
    session: AsyncSession,
    stmt: Select[R],
    created_col: Any,
    id_col: Any,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[R], str | None]:
    """One page of ``stmt``'s rows after ``cursor``, and the cursor of the next (or None)."""
    stmt = after_cursor(stmt, created_col, id_col, cursor).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    page = rows[:limit]
    nxt = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, nxt
