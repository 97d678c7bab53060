"""What a question asks about, and how much of it a piece of evidence covers.

``ask`` reads a question as a set of *aspects*: the names it mentions (people, places,
titles), its content words, and the periods its time phrases name ("last May", read against
the asker's ``now``). Evidence covers a name or word when its index text (content plus the
speaker, date and conversational context it is indexed with) holds it, and a period when it
happened within it. The gate asks whether the best evidence covers every aspect; probes go
after the ones still missing; the final selection prefers evidence that covers aspects the
rest does not. Pure functions, no I/O: unit-tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from memsvc.retrieval.ranker import names, terms
from memsvc.retrieval.timeparse import Period, parse_periods

# Words that shape a question but are not what it is about.
_QUESTION_WORDS = frozenset(
    "what when where which who whom whose how why kind type sort likely might may would"
    " ever still yet much many often long ago recently last first next"
    " tell know remember said say mention mentioned thing things".split()
)
# Probes are short: the names plus at most this many words.
PROBE_WORDS = 6


@dataclass(frozen=True)
class Aspects:
    """A question's names, content words and periods."""

    names: frozenset[str]
    words: frozenset[str]
    periods: tuple[Period, ...] = ()

    @property
    def labels(self) -> list[str]:
        """Every aspect as a label (``name:caroline``, ``word:adopt``, ``time:2023-05``)."""
        return (
            [f"name:{n}" for n in sorted(self.names)]
            + [f"word:{w}" for w in sorted(self.words)]
            + [f"time:{p.text}" for p in self.periods]
        )


def _stem(word: str) -> str:
    """A crude stem, the same for question and evidence: painted, painting -> paint."""
    for suffix in ("ing", "ed", "es"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in terms(text)}


def of_question(question: str, now: datetime) -> Aspects:
    """The aspects of ``question``, its time phrases read against ``now`` (their words are
    the period's, not names or content words)."""
    periods = tuple(parse_periods(question, now=now))
    in_time = set().union(*(terms(p.text) for p in periods)) if periods else set()
    found_names = frozenset(names(question) - in_time)
    words = frozenset(_stem(w) for w in terms(question) - found_names - _QUESTION_WORDS - in_time)
    return Aspects(names=found_names, words=words, periods=periods)


@dataclass
class Item:
    """What the loop knows of one candidate: enough to judge coverage without loading it."""

    text: str
    occurred_at: datetime | None
    covers: frozenset[str] = field(default_factory=frozenset)


def coverage(aspects: Aspects, text: str, occurred_at: datetime | None) -> frozenset[str]:
    """The labels of ``aspects`` that evidence with this index text and time covers."""
    have = _stems(text) | names(text)
    out = {f"name:{n}" for n in aspects.names if n in have or n in text.lower()}
    out |= {f"word:{w}" for w in aspects.words if w in have}
    if occurred_at is not None:
        out |= {f"time:{p.text}" for p in aspects.periods if _within(p, occurred_at)}
    return frozenset(out)


def _within(period: Period, at: datetime) -> bool:
    if period.start is None or period.end is None:
        return period.month == at.month
    return period.start <= at < period.end


def missing(aspects: Aspects, covered: Iterable[frozenset[str]]) -> list[str]:
    """Labels no evidence covers yet, in ``labels`` order."""
    have: set[str] = set().union(*covered)
    return [label for label in aspects.labels if label not in have]


def probes(
    aspects: Aspects,
    question: str,
    gaps: Sequence[str],
    best: Sequence[str],
    *,
    limit: int = 3,
    subsets: bool = True,
) -> list[str]:
    """Heuristic probe queries for what is still missing.

    - the question's names with the words no evidence covers yet (what is missing);
    - the names the best evidence brings that the question lacks, with the question's words
      (who else was there, what it was called);
    - the question's words alone, names dropped (the facts that matter may not repeat the
      name: "she" said it).

    The first and last are parts of the question (``subsets``): they find nothing the
    question could not, only reorder it.
    """
    qnames = sorted(aspects.names)
    gap_words = [g.split(":", 1)[1] for g in gaps if g.startswith("word:")]
    words = sorted(aspects.words)
    out: list[str] = []
    if gap_words and subsets:
        out.append(" ".join([*qnames, *gap_words[:PROBE_WORDS]]))
    new_names: list[str] = []
    for text in best:
        for n in sorted(names(text) - aspects.names):
            if n not in new_names:
                new_names.append(n)
    if new_names:
        out.append(" ".join([*new_names[:3], *words[:PROBE_WORDS]]))
    if qnames and words and subsets:
        out.append(" ".join(words[: PROBE_WORDS + 2]))
    seen = {question.strip().lower()}
    unique = []
    for p in out:
        key = p.strip().lower()
        if key and key not in seen:
            seen.add(key)
            unique.append(p)
    return unique[:limit]


def select(
    ranked: Sequence[tuple[str, float, frozenset[str]]],
    k: int,
    *,
    weight: float,
    total: int,
) -> list[tuple[str, float, list[str]]]:
    """Choose ``k`` of ``ranked`` (key, relevance, covered labels), greedily: each pick
    maximises relevance plus ``weight`` times the share of the question's ``total`` aspects
    it covers that the picks before it do not. Returns (key, gain, newly covered)."""
    left = list(ranked)
    have: set[str] = set()
    out: list[tuple[str, float, list[str]]] = []
    while left and len(out) < k:
        best_i, best_gain, best_new = 0, float("-inf"), frozenset[str]()
        for i, (_, rel, covers) in enumerate(left):
            new = covers - have
            gain = rel + weight * len(new) / max(total, 1)
            if gain > best_gain:
                best_i, best_gain, best_new = i, gain, new
        key = left.pop(best_i)[0]
        have |= best_new
        out.append((key, best_gain, sorted(best_new)))
    return out
