"""The text a memory is indexed by (full-text and embedding), derived, never stored as content."""

from __future__ import annotations

import re
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


# How many earlier memories of the same thread a memory is indexed with (see below), and
# how many words of each: enough for the question a short reply answers. A long preceding
# message in full drowned the memory's own words (bench/context_window.py, BM25 turn
# recall@10: lme_dev 0.656 with whole turns, 0.783 cut at 40 words, 0.750 with no context;
# locomo_dev 0.677 either way, 0.565 with none).
CONTEXT_TURNS = 2
CONTEXT_WORDS = 40
# Only a memory of at most ``CONTEXT_UP_TO`` words gets that context: a longer message names
# its own subject, and the turns before it only added words that outranked the answers (long
# assistant turns taking a user's question). BM25 channel alone, turn recall@10 (bench/lme.py
# --write session; bench/locomo.py --write turn, fulltext-only config), context for every
# turn / none / up to 40 / 50 / 60 / 80 words: lme_dev 0.789 / 0.840 / 0.850 / 0.850 / 0.817
# / 0.817, locomo_dev 0.757 / 0.632 / 0.714 / 0.733 / 0.748 / 0.758.
CONTEXT_UP_TO = 80
# Where the session context starts in an index text (erasure cuts turns out after it).
CONTEXT_MARK = "\n(context: "


def build_index_text(
    content: str,
    *,
    tags: Iterable[str] = (),
    sources: Sequence[Placed] = (),
    context: Sequence[str] = (),
) -> str:
    """Content placed for a reader: who said it, when, its tags and what was said just before.

    ``context`` holds the preceding turns of the same conversation: an answer ("yes, last
    Sunday") is only findable by the words of the question it answers. It goes last, so the
    memory's own words always fit the embedder's window.
    """
    speakers = list(dict.fromkeys(s.speaker for s in sources if s.speaker))
    dates = list(dict.fromkeys(_fmt_date(s.occurred_at) for s in sources if s.occurred_at))
    text = f"{', '.join(speakers)}: {content}" if speakers else content
    if dates:
        text += f" (on {'; '.join(dates)})"
    tag_list = list(tags)
    if tag_list:
        text += " [" + ", ".join(tag_list) + "]"
    if context:
        text += CONTEXT_MARK + " / ".join(context) + ")"
    return text


def takes_context(content: str) -> bool:
    """Whether a memory is indexed with the turns before it (``CONTEXT_UP_TO``)."""
    return len(content.split()) <= CONTEXT_UP_TO


def occurred_at(sources: Sequence[Placed]) -> datetime | None:
    """When the memory happened: the earliest dated source."""
    dates = [s.occurred_at for s in sources if s.occurred_at]
    return min(dates) if dates else None


class _Said(Protocol):
    @property
    def content(self) -> str: ...
    @property
    def sources(self) -> Sequence[Placed]: ...


def said_in_context(content: str) -> str:
    """What of a memory's content goes into a later memory's context: its first
    ``CONTEXT_WORDS`` words, whitespace collapsed."""
    return " ".join(content.split()[:CONTEXT_WORDS])


def context_line(speakers: Iterable[str | None], content: str) -> str:
    """A memory as a line of a later memory's context: ``Speaker: its first words``."""
    named = list(dict.fromkeys(s for s in speakers if s))
    said = said_in_context(content)
    return f"{', '.join(named)}: {said}" if named else said


def placed_text(memory: _Said) -> str:
    """A memory being written, as a context line (``context_line``)."""
    return context_line((s.speaker for s in memory.sources), memory.content)


# The embedder reads about the first 256 word pieces of a text (~190 English words). A
# memory longer than ``PASSAGE_FROM`` words also gets a vector for every ``PASSAGE_WORDS``
# words from ``PASSAGE_STRIDE`` on, a window every ``PASSAGE_STRIDE`` words (they overlap so
# a sentence cut at one edge is whole in the next); its own embedding covers the start.
PASSAGE_FROM = 180
PASSAGE_WORDS = 150
PASSAGE_STRIDE = 120
# A memory of two or more sentences of at least ``SENTENCE_WORDS`` words also gets a vector
# for each of them: one vector for a whole turn averages its topics, and a fact said in
# passing ("By the way, I got a new car") is found by its own sentence. On the dev sets'
# top-50 candidates, rescored offline with the packaged ranker, turn recall@10 went from
# 0.789 to 0.806 (LoCoMo) and 0.823 to 0.890 (LongMemEval); sentence pairs gave 0.818 and
# 0.873, both 0.808 and 0.890.
SENTENCE_WORDS = 4
# At most this many passages a memory (32 KiB of content is ~45 windows): windows first,
# then sentences while there is room.
MAX_PASSAGES = 64
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")


def sentences(content: str) -> list[str]:
    """The distinct sentences of ``content`` with at least ``SENTENCE_WORDS`` words,
    whitespace collapsed; [] when there are fewer than two (the memory's own vector is the
    sentence)."""
    out: dict[str, None] = {}  # each once, in order
    for part in _SENTENCE_END.split(content):
        words = part.split()
        if len(words) >= SENTENCE_WORDS:
            out[" ".join(words)] = None
    return list(out) if len(out) > 1 else []


def passages(content: str, speakers: Iterable[str | None] = ()) -> list[str]:
    """The passages of a memory, each placed like its index text (``Speaker: words``): a
    long memory's later windows, then its sentences (``sentences``); [] for a memory of one
    sentence the embedder reads whole."""
    words = content.split()
    named = list(dict.fromkeys(s for s in speakers if s))
    head = f"{', '.join(named)}: " if named else ""
    out = []
    if len(words) > PASSAGE_FROM:
        for start in range(PASSAGE_STRIDE, len(words), PASSAGE_STRIDE):
            out.append(head + " ".join(words[start : start + PASSAGE_WORDS]))
            if start + PASSAGE_WORDS >= len(words) or len(out) == MAX_PASSAGES:
                break
    for sentence in sentences(content):
        if len(out) == MAX_PASSAGES:
            break
        out.append(head + sentence)
    return out
