"""The text a memory is indexed by (full-text and embedding), derived, never stored as content."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol


class Placed(Protocol):
    """Anything with a speaker and a time (a source being created or a stored one)."""

    @property
    def speaker(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime | None: ...


def _fmt_date(at: datetime) -> str:
    return f"{at.day} {at.strftime('%B %Y')}"


def build_index_text(
    content: str, *, tags: Iterable[str] = (), sources: Sequence[Placed] = ()
) -> str:
    """Content placed for a reader: who said it, when, and its tags."""
    speakers = list(dict.fromkeys(s.speaker for s in sources if s.speaker))
    dates = list(dict.fromkeys(_fmt_date(s.occurred_at) for s in sources if s.occurred_at))
    text = f"{', '.join(speakers)}: {content}" if speakers else content
    if dates:
        text += f" (on {'; '.join(dates)})"
    tag_list = list(tags)
    if tag_list:
        text += " [" + ", ".join(tag_list) + "]"
    return text


def occurred_at(sources: Sequence[Placed]) -> datetime | None:
    """When the memory happened: the earliest dated source."""
    dates = [s.occurred_at for s in sources if s.occurred_at]
    return min(dates) if dates else None
