"""Candidate channels: each returns memory ids with a channel score, best first.

Every channel starts from the same scoped select (tenant, cube, filters, ``as_of``), so
filters hold in all of them.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Float,
    Row,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    extract,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.retrieval.lexicon import Lexicon, candidate_tsquery, thresholds
from memsvc.retrieval.timeparse import Period
from memsvc.store.ann import Ranked, exact_distance
from memsvc.store.caches import caches_of
from memsvc.store.models import Memory, MemoryPassage
from memsvc.store.textsearch import TextMatch, plain_match

_WORD = re.compile(r"[A-Za-z0-9]+")
# Lexemes safe to quote into a tsquery literal (others, e.g. URL parts, are skipped).
_LEXEME = re.compile(r"\w+")
# BM25 parameters (Robertson & Zaragoza's usual defaults).
BM25_K1 = 1.2
BM25_B = 0.75
# A lexeme in more than this share of the scope (and more than ``depth`` memories) is
# common: memories holding only common lexemes are not scored (see bm25_channel).
RARE_FRACTION = 0.05
# With a lexicon (large scopes, see _bm25_large): about this many memories are scored per
# result asked for, chosen by the idf of the (at most) CANDIDATE_LEXEMES rarest query
# lexemes they hold. Measured with bench/load.py on 10k/100k synthetic cubes (every word
# common): the top 10 are exact BM25's, the top 100 reach ~94-98% of its scores, at
# 8-20 ms instead of 60-430.
CANDIDATES_PER_RESULT = 4
# ... and, where memories tie on common words only, at most about this many per result
# (``lexicon.thresholds``): ranking thousands of those is most of a slow search.
MAX_SCORED_PER_RESULT = 20
CANDIDATE_LEXEMES = 6


def tsquery_text(query: str) -> str | None:
    """An OR query of the words in ``query`` (safe: only alphanumerics reach to_tsquery)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    return " | ".join(words) if words else None


@dataclass(frozen=True)
class ScopeStats:
    """How many memories a search's scope holds (up to a cap), their mean BM25 length, and
    how many vectors the vector channel would score exactly: the memories' own and their
    passages' (up to the same cap)."""

    n: int
    avgdl: float
    vectors: int = 0


async def cached_scope_stats(
    session: AsyncSession, base: Select[Any], limit: int, *, key: tuple[Any, ...]
) -> ScopeStats:
    """``scope_stats`` remembered for a few seconds per scope (a pass over up to ``limit``
    rows was the largest cost of a search); ``key`` must name the scope and its cube's
    write generation, so this process's writes are seen at once (``Caches.scope_stats``)."""
    cache = caches_of(session).scope_stats
    hit: ScopeStats | None = cache.get(key)
    if hit is None:
        hit = cache[key] = await scope_stats(session, base, limit)
    return hit


async def scope_stats(session: AsyncSession, base: Select[Any], limit: int) -> ScopeStats:
    """Count the scope no further than ``limit`` rows; average document length over them;
    its vectors (memories and their passages) no further than ``limit`` either. One
    statement."""
    sub = base.add_columns(Memory.tsv_len.label("dl")).limit(limit).subquery()
    passages = select(literal(1)).where(MemoryPassage.memory_id.in_(base)).limit(limit).subquery()
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.avg(sub.c.dl), 1.0),
                select(func.count()).select_from(passages).scalar_subquery(),
            )
        )
    ).one()
    n = int(row[0])
    return ScopeStats(n=n, avgdl=max(float(row[1]), 1.0), vectors=n + int(row[2]))


async def ts_rank_channel(
    session: AsyncSession,
    base: Select[Any],
    query: str,
    depth: int,
    *,
    match: TextMatch = plain_match,
) -> Ranked:
    """Memories matching any query word, ranked by ts_rank_cd (cheap on any cube size)."""
    q = tsquery_text(query)
    if q is None:
        return []
    tsq = func.to_tsquery("english", q)
    rank = func.ts_rank_cd(Memory.tsv, tsq, 32)
    stmt = base.add_columns(rank.label("r")).where(match(tsq))
    rows = await session.execute(stmt.order_by(rank.desc(), Memory.id).limit(depth))
    return [(mid, float(r)) for mid, r in rows]


async def bm25_channel(
    session: AsyncSession,
    base: Select[Any],
    query: str,
    depth: int,
    stats: ScopeStats,
    *,
    lexicon: Lexicon | None = None,
    match: TextMatch = plain_match,
    facts: Sequence[ColumnElement[Any]] = (),
    into: dict[uuid.UUID, Row[Any]] | None = None,
) -> Ranked:
    """Okapi BM25 over the scoped memories' tsvectors, computed in SQL.

    Document frequencies come from one GIN-driven pass over the memories matching any
    query lexeme (no tsvector is unpacked for it). Only memories that contain a *rare*
    lexeme are then scored (their tsvectors unpacked): a memory holding nothing but
    common words ("went", a speaker's name) cannot outrank one with a rare query word
    unless every lexeme is common, in which case all matches are scored. ``stats`` gives
    the scope size and mean length; tf is the number of positions a lexeme has.
    ``match`` makes the full-text conditions (``memsvc.store.textsearch``).

    With a ``lexicon`` (large scopes) the statistics come from it instead and only the
    memories passing a "minimum should match" threshold are scored (``_bm25_large``).

    ``facts`` (labelled columns of ``Memory``) of each memory ranked are read in the
    scoring statement and put ``into`` the given dict by id (what ranking needs next:
    no statement of its own).
    """
    lexemes = await _query_lexemes(session, query)
    if not lexemes:
        return []
    wanted = _Facts(tuple(facts), into)
    if lexicon is not None:
        return await _bm25_large(session, base, lexemes, depth, lexicon, match, wanted)
    df = await _document_counts(session, base, lexemes, match)
    if not df:
        return []
    cutoff = max(depth, RARE_FRACTION * stats.n)
    rare = [lx for lx, c in df.items() if c <= cutoff] or list(df)
    idf = _idf(df, stats.n)
    return await _bm25_scores(session, base, idf, _any_of(rare), stats.avgdl, depth, match, wanted)


@dataclass(frozen=True)
class _Facts:
    """Columns to read with each scored memory, and where to put the rows."""

    columns: tuple[ColumnElement[Any], ...] = ()
    into: dict[uuid.UUID, Row[Any]] | None = None


async def _bm25_large(
    session: AsyncSession,
    base: Select[Any],
    lexemes: list[str],
    depth: int,
    lex: Lexicon,
    match: TextMatch,
    facts: _Facts,
) -> Ranked:
    """BM25 with common lexemes' frequencies from ``lex``, rare ones counted exactly, and
    only memories whose matched lexemes' idf reach a threshold scored.

    The threshold lets about ``CANDIDATES_PER_RESULT * depth`` memories through; when
    fewer than ``depth`` of them come back (the sample misjudged), it is relaxed, down to
    scoring every match — unless that would score more than about
    ``MAX_SCORED_PER_RESULT * depth`` memories tied on common words only, in which case
    fewer than ``depth`` results come back.
    """
    df = {lx: lex.df[lx] for lx in lexemes if lx in lex.df}
    rare = [lx for lx in lexemes if lx not in df]
    if rare:
        df |= await _document_counts(session, base, rare, match)
    if not df:
        return []
    idf = _idf(df, lex.n)
    heavy = dict(sorted(idf.items(), key=lambda kv: (-kv[1], kv[0]))[:CANDIDATE_LEXEMES])
    ranked: Ranked = []
    steps = thresholds(lex, heavy, CANDIDATES_PER_RESULT * depth, cap=MAX_SCORED_PER_RESULT * depth)
    for theta in steps:
        tsq = candidate_tsquery(heavy, theta)
        candidates: Any = literal(tsq).cast(TSQUERY) if tsq else _any_of(list(idf))
        ranked = await _bm25_scores(session, base, idf, candidates, lex.avgdl, depth, match, facts)
        if len(ranked) >= depth or tsq is None:
            break
    return ranked


async def _query_lexemes(session: AsyncSession, query: str) -> list[str]:
    """The query's distinct lexemes as the index stems them (plain words only)."""
    if tsquery_text(query) is None:
        return []
    lexemes = (
        await session.execute(
            select(func.unnest(func.tsvector_to_array(func.to_tsvector("english", query))))
        )
    ).scalars()
    return [lx for lx in lexemes if _LEXEME.fullmatch(lx)]


async def _document_counts(
    session: AsyncSession, base: Select[Any], lexemes: list[str], match: TextMatch
) -> dict[str, int]:
    """How many scoped memories hold each lexeme (absent: none), in one GIN-driven pass.

    A count per lexeme, each a constant tsquery tested against every matching row: the
    statement's shape follows the query, but a row is only searched, never copied (cut
    down with ``_only`` and unpacked, as scoring does, a long message's whole tsvector was
    copied per row: 1.8 -> 3.0 ms on a 1,000-memory cube of short ones)."""
    matching = base.add_columns(Memory.tsv.label("tsv")).where(match(_any_of(lexemes))).subquery()
    counts = (
        await session.execute(
            select(
                *[func.count().filter(matching.c.tsv.op("@@")(_lexeme_query(lx))) for lx in lexemes]
            )
        )
    ).one()
    return {lx: int(c) for lx, c in zip(lexemes, counts, strict=True) if c}


def _idf(df: dict[str, int], n: int) -> dict[str, float]:
    """Robertson-Sparck Jones idf, never negative (n is at least the largest count)."""
    total = float(max(n, max(df.values())))
    return {lx: math.log(1 + (total - c + 0.5) / (c + 0.5)) for lx, c in df.items()}


async def _bm25_scores(
    session: AsyncSession,
    base: Select[Any],
    idf: dict[str, float],
    candidates: Any,
    avgdl: float,
    depth: int,
    match: TextMatch,
    facts: _Facts = _Facts(),
) -> Ranked:
    """The ``depth`` best BM25 scores among scoped memories matching ``candidates``
    (and their ``facts``, when asked for).

    The candidates are fetched first (a materialized CTE), then only their tsvectors are
    unpacked: left to itself the planner joined the idf table before fetching rows and
    unpacked each candidate once per query lexeme.
    """
    # The lexemes and their idf travel as array parameters: one statement shape for every
    # query (compiled once; built with a VALUES row and an array element per lexeme, its
    # Python was 5 ms of a hybrid search).
    lexemes = list(idf)
    idf_table = (
        func.unnest(
            bindparam("bm25_lexemes", lexemes, type_=ARRAY(Text)),
            bindparam("bm25_idf", [idf[lx] for lx in lexemes], type_=ARRAY(Float)),
        )
        .table_valued("lexeme", "idf")
        .render_derived(name="idf", with_types=False)
    )
    # Each candidate's tsvector cut down to the query's lexemes (``_only``), so only those
    # are unpacked into rows.
    only_query = _only(lexemes, "bm25_only")
    cand = (
        base.add_columns(only_query.label("tsv"), Memory.tsv_len.label("dl"), *facts.columns)
        .where(match(candidates))
        .cte("cand")
        .prefix_with("MATERIALIZED")
    )
    # A memory's facts are one value per id: grouped by, not aggregated.
    extra = [cand.c[col.key] for col in facts.columns if col.key is not None]
    lex = func.unnest(cand.c.tsv).table_valued("lexeme", "positions").lateral("lex")
    tf = cast(func.coalesce(func.array_length(lex.c.positions, 1), 1), Float)
    norm = BM25_K1 * (1 - BM25_B + BM25_B * cast(cand.c.dl, Float) / bindparam(None, avgdl, Float))
    score = func.sum(idf_table.c.idf * tf * (BM25_K1 + 1) / (tf + norm)).label("s")
    stmt = (
        select(cand.c.id, score, *extra)
        .select_from(cand)
        .join(lex, literal(True))
        .join(idf_table, idf_table.c.lexeme == lex.c.lexeme)
        .group_by(cand.c.id, *extra)
        .order_by(score.desc(), cand.c.id)
        .limit(depth)
    )
    rows = (await session.execute(stmt)).all()
    if facts.into is not None and extra:
        facts.into.update((row[0], row) for row in rows)
    return [(row[0], float(row[1])) for row in rows]


# The weight that marks query lexemes in a candidate's tsvector, and the filter keeping them.
_WEIGHT_A = "'A'::\"char\""
_ONLY_A = "'{a}'::\"char\"[]"


def _only(lexemes: list[str], name: str) -> Any:
    """A memory's tsvector cut down to ``lexemes`` in C (marked with weight A, then
    filtered on it: the stored vectors carry no weights), so unpacking it yields only
    those: a long message has thousands of lexemes, and unpacking them all made a search
    over long messages spend most of its time in BM25."""
    marked = func.setweight(
        Memory.tsv, literal_column(_WEIGHT_A), bindparam(name, lexemes, type_=ARRAY(Text))
    )
    return func.ts_filter(marked, literal_column(_ONLY_A))


def _any_of(lexemes: list[str]) -> Any:
    """A tsquery matching any of the (already stemmed) lexemes, as one bound parameter (the
    statement's shape does not depend on how many there are)."""
    text_query = " | ".join(_quoted(lx) for lx in lexemes)
    return cast(bindparam(None, text_query, type_=Text), TSQUERY)


def _quoted(lexeme: str) -> str:
    """A lexeme as a tsquery literal: no second stemming."""
    return "'" + lexeme.replace("'", "''") + "'"


def _lexeme_query(lexeme: str) -> Any:
    """A constant tsquery for one already-stemmed lexeme (no second stemming, and a
    constant the planner evaluates once rather than a function call per row)."""
    return literal(_quoted(lexeme)).cast(TSQUERY)


def _in_period(p: Period) -> Any:
    if p.start is not None and p.end is not None:
        return and_(Memory.occurred_at >= p.start, Memory.occurred_at < p.end)
    if p.month is not None:
        return extract("month", Memory.occurred_at) == p.month
    return false()


async def time_channel(
    session: AsyncSession,
    base: Select[Any],
    periods: list[Period],
    vec: np.ndarray | None,
    depth: int,
) -> Ranked:
    """Memories that happened in a period the query names; closest in meaning first.

    The score is the cosine similarity (or 1.0 without a query vector): the period
    decides membership, the meaning the order within it.
    """
    if not periods:
        return []
    stmt = base.where(Memory.occurred_at.is_not(None), or_(*(_in_period(p) for p in periods)))
    if vec is not None:
        dist = exact_distance(Memory.embedding, vec)
        stmt = stmt.add_columns((1 - dist).label("s")).order_by(dist + 0, Memory.id)
        rows = (await session.execute(stmt.limit(depth))).all()
        return [(mid, float(s) if s is not None else 0.0) for mid, s in rows]
    stmt = stmt.order_by(Memory.occurred_at.desc(), Memory.id)
    return [(mid, 1.0) for mid in (await session.execute(stmt.limit(depth))).scalars()]
