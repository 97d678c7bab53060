"""Writing a summary of memories: extractive without an LLM, one LLM call with one.

**Extractive** (no LLM, or the LLM gave no usable answer): the sentences of the window that
carry the most names (capitalised runs, ``heuristics.entities``), dates and numbers, up to
``CAP_CHARS``, put back in time order, each after its speaker; a first line says who and
when. **LLM**: one ``summarise_window`` call per window (the wrapper's repair-once rule
applies); an :class:`~memsvc.llm.LLMError` falls back to extractive and the summary
version records why (its ``reason``, and the job result), never dropped silently.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from memsvc.graph import heuristics
from memsvc.graph.builders import LLM_FALLBACKS, fmt_date
from memsvc.graph.prompts import SUMMARISE_WINDOW, SummariseWindowContext, TurnView
from memsvc.llm import LLM, LLMError, Usage
from memsvc.logs import safe_error
from memsvc.store.summaries import Member

log = logging.getLogger("memsvc.graph")

EXTRACTIVE_POLICY = "summarise:extractive.v1"
LLM_POLICY = f"summarise:llm:{SUMMARISE_WINDOW.id}"
# Characters of chosen sentences in an extractive summary (about 130 words: a fifth of a
# full window of 20 chat turns, enough for its names, dates and numbers).
CAP_CHARS = 800
# Words asked of the LLM, and the turns (longest cut to ``TURN_CHARS``) it is shown.
LLM_WORDS = 150
LLM_TURNS = 40
TURN_CHARS = 600

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_MONTH = re.compile(
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday|yesterday|today|tomorrow|week|month|year)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Written:
    """A summary's text and who wrote it (recorded on its version)."""

    content: str
    policy: str
    model: str | None = None
    # Why the LLM's summary was replaced by the extractive one (``invalid_llm_output``...).
    fallback: str | None = None


def _speaker(m: Member) -> str | None:
    return ", ".join(m.speakers) if m.speakers else None


def span(members: Sequence[Member]) -> tuple[datetime | None, datetime | None]:
    """When the first and the last member happened (None when none is dated)."""
    dates = [m.occurred_at for m in members if m.occurred_at is not None]
    return (min(dates), max(dates)) if dates else (None, None)


def header(members: Sequence[Member]) -> str:
    """Who and when: ``Caroline, Melanie; 8 May 2023 to 9 May 2023:``."""
    who = sorted({s for m in members for s in m.speakers})
    start, end = span(members)
    when = fmt_date(start) if start else None
    if start and end and fmt_date(end) != when:
        when = f"{when} to {fmt_date(end)}"
    parts = [", ".join(who) if who else None, when]
    text = "; ".join(p for p in parts if p)
    return f"{text}:" if text else ""


def weight(sentence: str) -> int:
    """What a sentence carries: its names, numbers and date words."""
    return (
        len(heuristics.entities(sentence))
        + len(_NUMBER.findall(sentence))
        + len(_MONTH.findall(sentence))
    )


def extractive(members: Sequence[Member], *, cap: int = CAP_CHARS) -> str:
    """The heaviest sentences of the members within ``cap`` characters, in time order."""
    found: list[tuple[int, int, int, str]] = []  # (-weight, member, sentence, text)
    for i, m in enumerate(members):
        for j, s in enumerate(_SENTENCE.split(m.content)):
            s = " ".join(s.split())
            if s:
                found.append((-weight(s), i, j, s))
    chosen: list[tuple[int, int, str]] = []
    used = 0
    for neg, i, j, s in sorted(found):
        if chosen and used + len(s) > cap:
            continue
        if not chosen and len(s) > cap:
            s = s[: cap - 1].rsplit(" ", 1)[0] + "…"
        chosen.append((i, j, s))
        used += len(s)
        if neg == 0 and used >= cap // 2:
            break  # the rest carry nothing in particular
    chosen.sort()
    lines = [header(members)] if header(members) else []
    for i, _, s in chosen:
        who = _speaker(members[i])
        lines.append(f"{who}: {s}" if who else s)
    return "\n".join(lines)


class Summariser:
    """Writes summaries: with ``llm`` one call per window, else (or on failure) extractive."""

    def __init__(self, llm: LLM | None) -> None:
        self.llm = llm

    async def write(self, members: Sequence[Member], *, layer: str, usage: Usage) -> Written:
        """A summary of ``members`` (in time order)."""
        if self.llm is None:
            return Written(content=extractive(members), policy=EXTRACTIVE_POLICY)
        ctx = SummariseWindowContext(
            layer=layer,
            turns=[
                TurnView(
                    n=n,
                    text=" ".join(m.content.split())[:TURN_CHARS],
                    speaker=_speaker(m),
                    date=fmt_date(m.occurred_at),
                )
                for n, m in enumerate(members[:LLM_TURNS], start=1)
            ],
            max_words=LLM_WORDS,
        )
        try:
            resp = await self.llm.run(SUMMARISE_WINDOW, ctx, usage=usage)
        except LLMError as exc:
            LLM_FALLBACKS.labels(SUMMARISE_WINDOW.id, exc.why).inc()
            log.warning("summary: extractive fallback (%s): %s", exc.why, safe_error(exc))
            return Written(
                content=extractive(members),
                policy=EXTRACTIVE_POLICY,
                model=None,
                fallback=exc.why,
            )
        return Written(content=resp.summary, policy=LLM_POLICY, model=self.llm.model)
