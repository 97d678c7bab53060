"""Shared wire types."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

JSONObject = dict[str, Any]


class WireModel(BaseModel):
    """Base for request bodies: unknown fields are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


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
