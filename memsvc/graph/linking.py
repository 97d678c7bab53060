"""Heuristic linking: which neighbours a new note links to, and why (no LLM).

A link needs a reason a reader would accept:

- **a shared named subject** (a person, pet, product, place; never the note's own
  speaker) gives ``same_entity``, weighted by how rare the name is in the cube (idf from
  the cube's own term counts). The name's first mention in the cube (its *anchor*) is
  always a candidate and is linked besides the cap, so every memory about a subject is
  within two hops of every other one. A name held by a large share of the cube, or the
  name of another speaker of the conversation ("Thanks, Mel!"), names no particular
  subject: it only counts together with similar content (the older rule);
- **a shared rare keyword** with some similarity of content gives ``related``;
- either one between memories of the same session (or, without sessions, the same day)
  gives ``follows`` from the later to the earlier (a follow-on event);
- a very similar text alone gives ``related``, a near-copy ``same_entity`` marked as a
  duplicate.

Names and keywords are extracted once per text (:func:`profile` is memoised on the text,
a pure function), so neighbours met again and again cost nothing after the first time.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from memsvc.graph import heuristics
from memsvc.store.notes import Candidate, Note

# Cosine of all-MiniLM-L6-v2 embeddings.
DUPLICATE_SIM = 0.95
RELATED_SIM = 0.75
# A shared *common* name (see below) plus this similarity gives ``same_entity``; each
# further shared name lowers it by 0.1.
ENTITY_MIN_SIM = 0.6
# A name held by more than this share of the cube (and more than NAME_COMMON_MIN memories)
# is common: the cube is about it, so sharing it says little.
NAME_COMMON_SHARE = 0.1
NAME_COMMON_MIN = 12
# A keyword held by at most this share of the cube (or TERM_RARE_MIN memories) is rare.
TERM_RARE_SHARE = 0.01
TERM_RARE_MIN = 2
# A shared rare keyword links only texts at least this similar.
TERM_MIN_SIM = 0.35
# How many of the note's names and keywords are looked up (rarest kept).
MAX_NAMES = 4
MAX_TERMS = 8
# Previous mentions of each name fetched as candidates (besides its anchor).
RECENT_MENTIONS = 2


@dataclass(frozen=True)
class Profile:
    """What linking reads of a text: its subject names and its other content words."""

    names: frozenset[str]
    terms: frozenset[str]


@lru_cache(maxsize=32_768)
def profile(text: str) -> Profile:
    """Names and keywords of ``text``, lower-cased (memoised: texts never change)."""
    names = heuristics.names(text)
    name_words = {w for n in names for w in n.split()}
    return Profile(
        names=frozenset(names),
        terms=frozenset(t for t in heuristics.terms(text) if t not in name_words),
    )


@dataclass
class LinkPlan:
    """new note --relation--> target."""

    target_id: uuid.UUID
    relation: str
    weight: float
    reason: str
    same_subject: bool = False
    duplicate: bool = False


@dataclass
class Subjects:
    """The cube-level facts heuristic linking needs about a note.

    ``n``: active memories in the cube; ``df``: how many hold each of the note's names
    and terms; ``names``/``terms``: the note's own (its own speaker removed from names,
    every speaker from terms); ``speakers``: the other speakers of its conversation
    named in it (common names: linked only with similar content); ``anchors``: the
    first mention of each name (memory id -> name); ``recent``: the latest mentions
    before the note.
    """

    n: int = 0
    df: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    speakers: frozenset[str] = frozenset()
    anchors: dict[uuid.UUID, str] = field(default_factory=dict)
    recent: list[uuid.UUID] = field(default_factory=list)


def _with_words(names: Sequence[str]) -> set[str]:
    lowered = {s.lower() for s in names}
    return lowered | {w for s in lowered for w in s.split()}


def lookups(note: Note, speakers: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """The note's names (its own speaker removed), terms (every speaker of its
    conversation removed) to count, and the other speakers it names.

    The other speaker's name is the only shared name of most turns that address them;
    kept as a common name (linked only with similar content), it links those turns as
    the older rule did, and they carry much of the graph's two-hop reach.
    """
    prof = profile(note.content)
    own = _with_words(note.speakers)
    spoken = own | _with_words(speakers)
    others = sorted(n for n in prof.names if n in spoken and n not in own)
    names = sorted(n for n in prof.names if n not in spoken)[: MAX_NAMES * 2]
    terms = sorted(t for t in prof.terms if t not in spoken)
    return names, terms, others


def rarity(df: int, n: int) -> float:
    """Normalised idf in [0, 1]: 1 for a name only this memory and one other hold."""
    if n <= 1:
        return 1.0
    return max(0.0, min(1.0, math.log((n + 1) / (max(df, 1) + 1)) / math.log(n + 1)))


def common_name(df: int, n: int) -> bool:
    return df > max(NAME_COMMON_MIN, NAME_COMMON_SHARE * n)


def rare_term(df: int, n: int) -> bool:
    return 0 < df <= max(TERM_RARE_MIN, TERM_RARE_SHARE * n)


def _when(at: datetime | None) -> object:
    return None if at is None else at.astimezone(UTC).date()


def _same_episode(note: Note, c: Candidate) -> bool:
    """Same session, or (neither in a session) the same day."""
    if note.session_id is not None or c.session_id is not None:
        return note.session_id == c.session_id
    day = _when(note.occurred_at)
    return day is not None and day == _when(c.occurred_at)


def _earlier(c: Candidate, note: Note) -> bool:
    return (c.occurred_at or c.created_at, str(c.id)) < (
        note.occurred_at or note.created_at,
        str(note.id),
    )


def decide(
    note: Note,
    candidates: Sequence[Candidate],
    subjects: Subjects,
    *,
    max_links: int,
    previous: uuid.UUID | None = None,
) -> list[LinkPlan]:
    """Up to ``max_links`` links (duplicates first, then by weight), and the anchors of
    the note's names besides."""
    n = subjects.n
    names = {
        x
        for x in subjects.names
        if x not in subjects.speakers and not common_name(subjects.df.get(x, 0), n)
    }
    common = (set(subjects.names) | subjects.speakers) - names
    rare = {t for t in subjects.terms if rare_term(subjects.df.get(t, 0), n)}
    ranked: list[tuple[int, float, str, LinkPlan]] = []
    for c in candidates:
        if c.id == note.id:
            continue
        sim = round(c.similarity, 4)
        prof = profile(c.content)
        shared = sorted(names & prof.names, key=lambda x: (subjects.df.get(x, 0), x))
        shared_common = sorted(common & prof.names)
        shared_terms = sorted(rare & prof.terms, key=lambda x: (subjects.df.get(x, 0), x))
        follow_on = _same_episode(note, c) and _earlier(c, note) and c.id != previous
        priority = 2
        if sim >= DUPLICATE_SIM:
            priority = 0
            plan = LinkPlan(
                c.id, "same_entity", sim, f"near-duplicate (cosine {sim:.2f})", duplicate=True
            )
        elif shared:
            best = max(rarity(subjects.df.get(x, 0), n) for x in shared)
            weight = round(min(1.0, 0.4 + 0.4 * best + 0.2 * max(sim, 0.0)), 4)
            about = ", ".join(shared)
            if c.id in subjects.anchors:
                priority = 1
            if follow_on:
                plan = LinkPlan(c.id, "follows", weight, f"earlier about {about}", True)
            else:
                plan = LinkPlan(c.id, "same_entity", weight, f"both about {about}", True)
        elif shared_common and sim >= ENTITY_MIN_SIM - 0.1 * (len(shared_common) - 1):
            weight = round(min(1.0, sim + 0.1 * len(shared_common)), 4)
            plan = LinkPlan(c.id, "same_entity", weight, f"both mention {', '.join(shared_common)}")
        elif shared_terms and sim >= TERM_MIN_SIM:
            weight = round(min(1.0, sim + 0.1 * len(shared_terms)), 4)
            words = ", ".join(shared_terms[:3])
            relation = "follows" if follow_on else "related"
            plan = LinkPlan(c.id, relation, weight, f"both mention rare {words}")
        elif sim >= RELATED_SIM:
            plan = LinkPlan(c.id, "related", sim, f"similar content (cosine {sim:.2f})")
        else:
            continue
        ranked.append((priority, -plan.weight, str(c.id), plan))
    ranked.sort(key=lambda r: r[:3])
    anchors = [r[3] for r in ranked if r[0] == 1]
    rest = [r[3] for r in ranked if r[0] != 1]
    return [*rest[:max_links], *anchors]
