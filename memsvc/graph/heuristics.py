"""Heuristic note construction and linking: what enrichment does with no LLM configured.

Deliberately simple and honest about it:

- keywords: capitalised entities first, then stop-word-filtered words by frequency;
- entities: runs of capitalised words (a sentence-initial word counts unless it is a
  common word), so "Caroline" and "Golden Gate Bridge" are found but so is "Painting"
  at the start of a sentence, and lower-case names are missed;
- tags: the user's tags plus up to three entities (lower-cased), never categories;
- context: a template line ("Mentions X; about a, b, c. Said by S on D."), not a summary;
- names (:func:`names`): the stricter entity list linking uses — a capitalised word that
  opens a sentence is a name only if it is not a common word, verb or adverb form;
- links: decided in :mod:`memsvc.graph.linking` — a shared named subject (idf-weighted,
  speakers excluded) gives ``same_entity``, a shared rare keyword ``related``, either one
  within a session ``follows``; a very high cosine marks a near-duplicate (``same_entity``
  with ``duplicate`` in the link's provenance); the memory just before in the same
  session (same ``session_id``, else the same source day) gets ``follows``.

It never infers ``supports``, ``contradicts``, ``supersedes`` or ``causes`` and never
rewrites neighbours (no evolution, no validity closing): that needs judgement, which is
what LLM mode is for.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")

STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't cannot could couldn't did didn't
    do does doesn't doing don't down during each few for from further had hadn't has hasn't
    have haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's me more most
    mustn't my myself no nor not now of off on once only or other ought our ours ourselves
    out over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's
    whom why why's will with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves really lot lots get got gets getting go going goes went gone make
    made makes one two thing things something anything everything nothing way much many
    still even ever yet though although since like just well also maybe sure know think
    thought feel felt want wanted see seen saw say said tell told let yeah yes hey hi hello
    wow oh ok okay thanks thank great good awesome cool nice amazing totally definitely
    absolutely glad happy love loved time times day days today yesterday tomorrow always
    never sometimes often kind sort bit pretty quite named called
    """.split()
)

# Capitalised at the start of a sentence without being a name.
_COMMON_STARTERS = STOPWORDS | frozenset(
    """
    sounds looks seems guess anyway btw haha lol congrats congratulations sorry please
    right true exactly indeed speaking talking honestly actually besides plus also
    """.split()
)


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def _clean(token: str) -> str:
    return token[:-2] if token.lower().endswith("'s") else token


def entities(text: str) -> list[str]:
    """Names in ``text``: runs of capitalised words, in order of first appearance."""
    found: list[str] = []
    for sentence in _sentences(text):
        tokens = [_clean(t) for t in _TOKEN.findall(sentence)]
        run: list[str] = []
        run_start = 0
        for i, tok in enumerate([*tokens, ""]):
            if tok and tok[0].isupper() and tok != "I":
                if not run:
                    run_start = i
                run.append(tok)
                continue
            if run:
                # Leading stop words are not part of a name ("The Beatles" -> "Beatles").
                while run and run[0].lower() in STOPWORDS:
                    run.pop(0)
                    run_start += 1
                if run and not (
                    len(run) == 1 and run_start == 0 and run[0].lower() in _COMMON_STARTERS
                ):
                    found.append(" ".join(run))
                run = []
    return list(dict.fromkeys(found))


# Capitalised but naming no subject: months, weekdays, greetings' objects.
_NOT_NAMES = frozenset(
    """
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday english mr mrs ms dr
    """.split()
)
# Sentence-initial words with these endings are verbs, adverbs or gerunds, not names.
_NOT_NAME_ENDINGS = ("ing", "ed", "ly")


def names(text: str) -> list[str]:
    """Named subjects in ``text`` (a person, pet, product, place), lower-cased.

    Stricter than :func:`entities`: a single capitalised word that opens a sentence is
    a name only when it is not a common word, does not look like a verb or adverb
    ("Painting", "Finally") and is not also written in lower case in the same text.
    """
    lowered = {t.lower() for t in _TOKEN.findall(text) if t[0].islower()}
    out: list[str] = []
    for sentence in _sentences(text):
        tokens = [_clean(t) for t in _TOKEN.findall(sentence)]
        run: list[str] = []
        run_start = 0
        for i, tok in enumerate([*tokens, ""]):
            if tok and tok[0].isupper() and tok != "I":
                if not run:
                    run_start = i
                run.append(tok)
                continue
            while run and (run[0].lower() in _COMMON_STARTERS or run[0].lower() in _NOT_NAMES):
                run.pop(0)
                run_start += 1
            if len(run) > 1 and run_start == 0 and run[0].lower().endswith(_NOT_NAME_ENDINGS):
                run.pop(0)  # "Finally Melanie ..."
                run_start += 1
            if run:
                word = run[0].lower()
                opener = len(run) == 1 and run_start == 0
                if not (
                    len(word) < 2
                    or (opener and (word.endswith(_NOT_NAME_ENDINGS) or word in lowered))
                ):
                    out.append(" ".join(run).lower())
            run = []
    return list(dict.fromkeys(out))


def terms(text: str) -> list[str]:
    """Content words of ``text`` (lower-cased, no stop words, at least 4 letters)."""
    words = (_clean(t).lower() for t in _TOKEN.findall(text))
    return list(dict.fromkeys(w for w in words if len(w) >= 4 and w not in _COMMON_STARTERS))


def keywords(text: str, *, limit: int = 8) -> list[str]:
    """Salient terms: entities first, then content words by frequency (ties: first seen)."""
    ents = entities(text)
    ent_words = {w.lower() for e in ents for w in e.split()}
    words = [_clean(t).lower() for t in _TOKEN.findall(text)]
    counts = Counter(w for w in words if len(w) >= 3 and w not in STOPWORDS and w not in ent_words)
    first = {w: i for i, w in reversed(list(enumerate(words)))}
    ranked = sorted(counts, key=lambda w: (-counts[w], first[w]))
    return list(dict.fromkeys([*(e.lower() for e in ents), *ranked]))[:limit]


def tags(existing: list[str], ents: list[str], *, limit: int = 3) -> list[str]:
    """The caller's tags plus up to ``limit`` entity tags."""
    return list(dict.fromkeys([*existing, *(e.lower() for e in ents[:limit])]))


def _fmt_date(at: datetime) -> str:
    return f"{at.day} {at.strftime('%B %Y')}"


def context_line(
    *,
    kind: str,
    keywords: list[str],
    entities: list[str],
    speakers: list[str],
    occurred_at: datetime | None,
) -> str:
    """A one-line, template-made context for a note."""
    ent_lower = {e.lower() for e in entities}
    topics = [k for k in keywords if k not in ent_lower][:3]
    parts = []
    if entities:
        parts.append("Mentions " + ", ".join(entities[:3]))
    if topics:
        parts.append(("about " if parts else "About ") + ", ".join(topics))
    line = "; ".join(parts) if parts else f"A {kind}"
    who = f" by {', '.join(speakers[:2])}" if speakers else ""
    when = f" on {_fmt_date(occurred_at)}" if occurred_at else ""
    if who or when:
        line += f". {kind.capitalize()}{who}{when}"
    return line + "."
