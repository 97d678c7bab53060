"""Keyset pagination over ``(created_at, id)``: stable under concurrent inserts, no caps."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, and_, or_, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import BadRequest
from memsvc.schemas.common import INT64_MAX, Page, to_utc

S = TypeVar("S", bound=Select[Any])
T = TypeVar("T")


def encode_cursor(created_at: datetime, row_id: uuid.UUID | int) -> str:
    """An opaque cursor for the row after which the next page starts."""
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; a malformed (or forged) cursor is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(at, str) or not isinstance(row_id, str | int):
            raise TypeError("cursor holds the wrong types")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("cursor time has no offset")
        return to_utc(when), str(row_id)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest("malformed cursor", code="invalid_cursor") from exc


def _row_key(id_col: Any, row_id: str) -> Any:
    """The cursor's row id as the id column's type (uuid or bigint); 400 when it is not one."""
    try:
        if id_col.type.python_type is int:
            key = int(row_id)
            if not -INT64_MAX - 1 <= key <= INT64_MAX:
                raise ValueError("row id out of range")
            return key
        return uuid.UUID(row_id)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise BadRequest("malformed cursor", code="invalid_cursor") from exc


def after_cursor(stmt: S, created_col: Any, id_col: Any, cursor: str | None) -> S:
    """Restrict ``stmt`` to rows after ``cursor`` and order it by the keyset."""
    if cursor:
        at, row_id = decode_cursor(cursor)
        key = _row_key(id_col, row_id)
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


async def every(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> list[T]:
    """All items of a paged listing: ``fetch(cursor)`` page after page until the last."""
    out: list[T] = []
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        out.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out


async def pages(
    session: AsyncSession, stmt: Select[R], created_col: Any, id_col: Any, *, size: int
) -> AsyncIterator[list[R]]:
    """Every row of ``stmt`` in keyset order, ``size`` at a time (streaming a whole table:
    each page is one query, no cursor round trip)."""
    after: tuple[datetime, Any] | None = None
    while True:
        q = stmt if after is None else stmt.where(tuple_(created_col, id_col) > after)
        rows = list((await session.scalars(q.order_by(created_col, id_col).limit(size))).all())
        if rows:
            yield rows
        if len(rows) < size:
            return
        after = (rows[-1].created_at, rows[-1].id)
