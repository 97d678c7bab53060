"""The memory table's filter form: query parameters in, store filters and search filters out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import urlencode

from memsvc.errors import BadRequest
from memsvc.schemas import SearchFilters
from memsvc.schemas.common import to_utc
from memsvc.schemas.memories import Layer
from memsvc.store.memories import MemoryFilters

LAYERS = ("core", "semantic", "episodic")
STATUSES = ("active", "deleted", "all")
PAGE_SIZES = (25, 50, 100, 250, 500)


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _time(name: str, value: str | None, *, end_of_day: bool = False) -> datetime | None:
    """An ISO date or datetime (UTC when no zone is given); a date ``to`` covers that day."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequest(
            f"{name} is not an ISO date or time: {value!r}", code="invalid_filter"
        ) from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        at = to_utc(at)
        if end_of_day and len(value) == 10:
            at = to_utc(at + timedelta(days=1))
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"{name}: {exc}", code="invalid_filter") from exc
    return at


@dataclass(frozen=True)
class TableQuery:
    """What the memory table was asked for: filters, a search, a page."""

    status: str = "active"
    kind: str | None = None
    layer: str | None = None
    tags: list[str] = field(default_factory=list)
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    after: str | None = None
    before: str | None = None
    q: str | None = None
    preset: str = "hybrid"
    top_k: int = 20
    cursor: str | None = None
    limit: int = 50

    @classmethod
    def parse(cls, params: dict[str, str]) -> TableQuery:
        """From the page's query parameters (blank fields mean no filter)."""
        status = _blank(params.get("status")) or "active"
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}", code="invalid_filter")
        layer = _blank(params.get("layer"))
        if layer is not None and layer not in LAYERS:
            raise BadRequest(f"layer must be one of {', '.join(LAYERS)}", code="invalid_filter")
        try:
            limit = int(params.get("limit") or 50)
            top_k = int(params.get("top_k") or 20)
        except ValueError as exc:
            raise BadRequest("limit and top_k must be integers", code="invalid_filter") from exc
        if not 1 <= limit <= 1000 or not 1 <= top_k <= 1000:
            raise BadRequest("limit and top_k must be 1..1000", code="invalid_filter")
        tags = [t.strip() for t in (params.get("tag") or "").split(",") if t.strip()]
        q = cls(
            status=status,
            kind=_blank(params.get("kind")),
            layer=layer,
            tags=tags,
            user_id=_blank(params.get("user_id")),
            agent_id=_blank(params.get("agent_id")),
            session_id=_blank(params.get("session_id")),
            after=_blank(params.get("after")),
            before=_blank(params.get("before")),
            q=_blank(params.get("q")),
            preset=_blank(params.get("preset")) or "hybrid",
            top_k=top_k,
            cursor=_blank(params.get("cursor")),
            limit=limit,
        )
        q.created_after()
        q.created_before()
        return q

    def created_after(self) -> datetime | None:
        return _time("from", self.after)

    def created_before(self) -> datetime | None:
        return _time("to", self.before, end_of_day=True)

    def store_filters(self) -> MemoryFilters:
        """The same filters the API's list endpoint builds."""
        return MemoryFilters(
            status=self.status if self.status != "all" else None,
            kind=self.kind,
            layer=self.layer,
            tags=self.tags,
            user_id=self.user_id,
            agent_id=self.agent_id,
            session_id=self.session_id,
            created_after=self.created_after(),
            created_before=self.created_before(),
            include_deleted=self.status == "all",
        )

    def search_filters(self) -> SearchFilters:
        """The filters as a search request carries them (search sees active, or all)."""
        return SearchFilters(
            kinds=[self.kind] if self.kind else None,
            layers=[cast(Layer, self.layer)] if self.layer else None,
            tags=self.tags or None,
            user_id=self.user_id,
            agent_id=self.agent_id,
            session_id=self.session_id,
            created_after=self.created_after(),
            created_before=self.created_before(),
            include_deleted=self.status != "active",
        )

    def url_params(self, **override: str | None) -> str:
        """The query string of this view with ``override`` applied (None drops a key)."""
        params: dict[str, str | None] = {
            "status": self.status if self.status != "active" else None,
            "kind": self.kind,
            "layer": self.layer,
            "tag": ",".join(self.tags) or None,
            "user_id": self.user_id,
            "agent_id": self.agent_id,
            "session_id": self.session_id,
            "after": self.after,
            "before": self.before,
            "q": self.q,
            "preset": self.preset if self.q else None,
            "top_k": str(self.top_k) if self.q else None,
            "limit": str(self.limit) if self.limit != 50 else None,
        }
        params.update(override)
        return urlencode({k: v for k, v in params.items() if v is not None})

    @property
    def filtered(self) -> bool:
        return any(
            (self.kind, self.layer, self.tags, self.user_id, self.agent_id, self.session_id)
        ) or any((self.after, self.before, self.status != "active"))
