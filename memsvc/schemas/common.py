"""Shared wire types."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")

JSONObject = dict[str, Any]

# Bounds of the integers Postgres stores (versions are int4, job ids int8).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# What both Python and Postgres represent once normalised to UTC, with a day to spare on
# either side so that any offset applied later (or by a client) stays representable.
MIN_TIME = datetime(1, 1, 2, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 30, tzinfo=UTC)

# Nesting of JSON values past this is refused (metadata 500 deep broke the JSONB path).
MAX_DEPTH = 32

# NUL (which Postgres text cannot hold) and lone surrogates (which UTF-8 cannot encode).
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC (naive means UTC); ValueError when outside MIN_TIME .. MAX_TIME."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("date is out of the supported range after conversion to UTC") from exc
    if not MIN_TIME <= utc <= MAX_TIME:
        raise ValueError(f"date must lie between {MIN_TIME.date()} and {MAX_TIME.date()} in UTC")
    return utc


def _valid_time(value: datetime) -> datetime:
    return to_utc(value)


# Every datetime a request carries: normalised to UTC and within what the store can hold.
Timestamp = Annotated[datetime, AfterValidator(_valid_time)]


def bad_text(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (NUL, lone surrogate), or None."""
    m = _BAD_CHARS.search(value)
    if m is None:
        return None
    return "NUL character" if m.group() == "\x00" else "lone surrogate"


def check_value(value: Any, path: tuple[str | int, ...] = (), depth: int = 0) -> None:
    """Refuse (ValueError) what no field should hold: NUL, lone surrogates, NaN/Infinity,
    nesting deeper than MAX_DEPTH, in every string, dict key, list and number of ``value``."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels at {_where(path)}")
    if isinstance(value, str):
        why = bad_text(value)
        if why:
            raise ValueError(f"{why} in string at {_where(path)}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number at {_where(path)}")
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                why = bad_text(k)
                if why:
                    raise ValueError(f"{why} in key at {_where(path)}")
            check_value(v, (*path, str(k)), depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_value(v, (*path, i), depth + 1)


def _where(path: tuple[str | int, ...]) -> str:
    return "/" + "/".join(str(p) for p in path[:8])


class WireModel(BaseModel):
    """Base for request bodies: unknown fields are refused, not silently dropped, and no
    string, key or number of the body may be one the store cannot hold (``check_value``)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_value(data)
        return data


class ReadModel(BaseModel):
    """Base for responses: tolerant of fields added by newer servers."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)


class Page(ReadModel, Generic[T]):
    """A cursor page: pass ``next_cursor`` back as ``cursor`` until it is null."""

    items: list[T]
    next_cursor: str | None = None


class ErrorInfo(ReadModel):
    code: str
    message: str
    detail: Any = None


class ErrorBody(ReadModel):
    """``{"error": {"code", "message", "detail"}}`` on every error response."""

    error: ErrorInfo


class Health(ReadModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
