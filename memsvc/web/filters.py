"""The memory table's filter form: query parameters in, list filters and search filters out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import urlencode

from memsvc.errors import BadRequest
from memsvc.schemas import MemoryFilters, SearchFilters
from memsvc.schemas.common import to_utc
from memsvc.schemas.memories import Layer, Status

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
    """What the memory table was asked for: the API's list filters, a search, a page.

    ``status`` is the form's (``all`` too); ``after``/``before`` are the dates as typed.
    """

    filters: MemoryFilters = field(default_factory=MemoryFilters)
    status: str = "active"
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
        after, before = _blank(params.get("after")), _blank(params.get("before"))
        filters = MemoryFilters(
            status=cast(Status, status) if status != "all" else None,
            kind=_blank(params.get("kind")),
            layer=cast(Layer, layer),
            tag=tags,
            user_id=_blank(params.get("user_id")),
            agent_id=_blank(params.get("agent_id")),
            session_id=_blank(params.get("session_id")),
            created_after=_time("from", after),
            created_before=_time("to", before, end_of_day=True),
            include_deleted=status == "all",
        )
        return cls(
            filters=filters,
            status=status,
            after=after,
            before=before,
            q=_blank(params.get("q")),
            preset=_blank(params.get("preset")) or "hybrid",
            top_k=top_k,
            cursor=_blank(params.get("cursor")),
            limit=limit,
        )

    def search_filters(self) -> SearchFilters:
        """The filters as a search request carries them (search sees active, or all)."""
        f = self.filters
        return SearchFilters(
            kinds=[f.kind] if f.kind else None,
            layers=[f.layer] if f.layer else None,
            tags=f.tag or None,
            user_id=f.user_id,
            agent_id=f.agent_id,
            session_id=f.session_id,
            created_after=f.created_after,
            created_before=f.created_before,
            include_deleted=self.status != "active",
        )

    def url_params(self, **override: str | None) -> str:
        """The query string of this view with ``override`` applied (None drops a key)."""
        f = self.filters
        params: dict[str, str | None] = {
            "status": self.status if self.status != "active" else None,
            "kind": f.kind,
            "layer": f.layer,
            "tag": ",".join(f.tag or []) or None,
            "user_id": f.user_id,
            "agent_id": f.agent_id,
            "session_id": f.session_id,
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
        f = self.filters
        return any((f.kind, f.layer, f.tag, f.user_id, f.agent_id, f.session_id)) or any(
            (self.after, self.before, self.status != "active")
        )
