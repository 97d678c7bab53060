"""BM25 on large scopes: cached statistics of common lexemes and "minimum should match"
candidates.

When a query's words are common in a large cube, exact BM25 costs two passes over most of
it: one to count each lexeme's documents, one to score every memory matching any of them.
Two things remove both passes:

- ``Lexicon``: the scope's size, mean length, the document frequencies of its common
  lexemes and a fixed sample of its memories, from a few passes kept for minutes (common
  lexemes' frequencies move slowly). Lexemes not in it are rare: the channel counts them
  exactly on every query (cheap through the GIN index), so new words count at once.
- ``candidate_tsquery``: only memories whose matched query lexemes' idf add up to a
  threshold are scored. The threshold comes from the sample, so that about ``target``
  memories pass: a memory holding one rare word passes alone, one holding nothing but
  common words needs several of them. The tsquery runs on the GIN index, so memories that
  fail it are never read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.caches import Caches, caches_of
from memsvc.store.models import Memory

log = logging.getLogger(__name__)

# Scopes larger than this get a lexicon; below it exact BM25 costs a few milliseconds.
LEXICON_MIN_SCOPE = 2_000
# A lexeme held by at least this share of the scope is common: its document frequency is
# cached. Others are counted per query: each costs at most this share of the scope.
COMMON_FRACTION = 0.002
# Memories sampled to pick the candidate threshold from: enough that ``depth`` results'
# worth of a 100k scope is dozens of them (a 10k scope is sampled whole).
SAMPLE_SIZE = 10_000
# A threshold tsquery with more lexeme leaves than this is not built (every match is
# scored instead): GIN evaluates the whole tree for each memory matching any leaf.
MAX_LEAVES = 2000
_TTL_S = 300.0
# A lexicon past its time is answered while a background task refreshes it, for at most
# this long past its time (then the search that finds it recomputes it).
_MAX_STALE_S = 3600.0
_EPS = 1e-9


@dataclass(frozen=True)
class Lexicon:
    """What BM25 needs to know about a scope's vocabulary, short of the rare lexemes.

    ``df``: memories holding each lexeme that at least ``min_df`` of them hold.
    ``sample``: for each lexeme, which of ``sample_size`` memories (a fixed pseudo-random
    sample of the scope) hold it, as an index array.
    """

    n: int
    avgdl: float
    min_df: int
    df: dict[str, int]
    sample_size: int
    sample: dict[str, npt.NDArray[np.int32]]


async def lexicon(session: AsyncSession, base: Select[Any]) -> Lexicon:
    """Count the scope, its lexemes' document frequencies (common ones) and a sample."""
    scoped = base.add_columns(Memory.tsv_len.label("dl"), Memory.tsv.label("tsv")).subquery()
    n, avgdl = (
        await session.execute(select(func.count(), func.coalesce(func.avg(scoped.c.dl), 1.0)))
    ).one()
    min_df = max(2, math.ceil(COMMON_FRACTION * int(n)))
    words = select(func.unnest(func.tsvector_to_array(scoped.c.tsv)).label("w")).subquery()
    df_rows = await session.execute(
        select(words.c.w, func.count()).group_by(words.c.w).having(func.count() >= min_df)
    )
    # md5 of the id: a sample that stays put between refreshes, whatever ids look like.
    picked = select(func.tsvector_to_array(scoped.c.tsv)).order_by(
        func.md5(cast(scoped.c.id, Text))
    )
    docs = (await session.execute(picked.limit(SAMPLE_SIZE))).scalars().all()
    postings: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        for word in doc:
            postings.setdefault(word, []).append(i)
    return Lexicon(
        n=int(n),
        avgdl=max(float(avgdl), 1.0),
        min_df=min_df,
        df={w: int(c) for w, c in df_rows},
        sample_size=len(docs),
        sample={w: np.array(ix, dtype=np.int32) for w, ix in postings.items()},
    )


# A transaction scoped like the search's own (``Database.tenant_transaction``).
Reopen = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def scope_key(base: Select[Any]) -> tuple[str, str]:
    """The scope a select stands for: its SQL and bound values (tenant, cube, filters)."""
    compiled = base.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    return str(compiled), repr(sorted(compiled.params.items()))


async def cached_lexicon(
    session: AsyncSession, base: Select[Any], *, reopen: Reopen | None = None
) -> Lexicon:
    """``lexicon`` remembered for a few minutes per scope (``Caches.lexicons``); one search
    computes it while concurrent ones wait (it is a few passes over the scope: ~0.2-0.45 s
    at 100k, bench/load.py).

    With ``reopen`` (a new transaction scoped like ``session``), a lexicon at most
    ``_MAX_STALE_S`` past its time is still answered, and refreshed by one background
    task (owned by the caches, awaited when the database closes), so no search pays for
    the refresh; common lexemes' frequencies move slowly.
    """
    caches = caches_of(session)
    key = scope_key(base)
    hit = _fresh(caches, key)
    if hit is not None:
        return hit
    stale = caches.lexicons.get(key)
    if reopen is not None and stale is not None and stale[1] + _MAX_STALE_S > time.monotonic():
        if key not in caches.lexicon_refreshing:
            caches.lexicon_refreshing.add(key)
            caches.spawn(asyncio.create_task(_refresh(caches, key, base, reopen)))
        lex: Lexicon = stale[0]
        return lex
    lock = caches.lexicon_locks.setdefault(key, asyncio.Lock())
    try:
        async with lock:
            hit = _fresh(caches, key)
            if hit is not None:
                return hit
            lex = await lexicon(session, base)
            _store(caches, key, lex)
            return lex
    finally:
        caches.lexicon_locks.pop(key, None)


async def _refresh(caches: Caches, key: tuple[str, str], base: Select[Any], reopen: Reopen) -> None:
    try:
        async with reopen() as session:
            _store(caches, key, await lexicon(session, base))
    except Exception:  # the stale lexicon keeps answering; the next search tries again
        log.exception("lexicon refresh failed")
    finally:
        caches.lexicon_refreshing.discard(key)


def _store(caches: Caches, key: tuple[str, str], lex: Lexicon) -> None:
    caches.lexicons[key] = (lex, time.monotonic() + _TTL_S)


def _fresh(caches: Caches, key: tuple[str, str]) -> Lexicon | None:
    hit = caches.lexicons.get(key)
    if hit is None or hit[1] <= time.monotonic():
        return None
    lex: Lexicon = hit[0]
    return lex


def thresholds(
    lex: Lexicon, weights: dict[str, float], target: int, cap: float = math.inf
) -> list[float]:
    """Idf sums to require, strictest first.

    The first lets about ``target`` of the sampled memories' share of the scope through;
    the next about four times as many, for when the sample was unlucky; the last, 0, every
    match. None is let to admit more than about ``cap`` memories where a stricter sum
    exists: memories holding nothing but the same common query words all tie at one sum (a
    plateau), and letting it through means reading every one of them, so the step moves to
    the smallest sum above it; and the step to every match is left out when that would
    pass ``cap``. A lexeme the sample does not hold (a rare one) counts as a stricter sum
    of its weight. The channel then returns fewer results rather than rank thousands of
    memories that match only common words (seen on real text: 8k memories holding
    "class", 90 ms of a search's 120).
    """
    sums = np.zeros(lex.sample_size)
    for word, w in weights.items():
        if word in lex.sample:
            sums[lex.sample[word]] += w
    ranked = -np.sort(-sums[sums > 0])
    scale = max(lex.n, 1) / max(lex.sample_size, 1)

    def admits(theta: float) -> float:
        return float(np.count_nonzero(ranked >= theta - _EPS)) * scale

    out: list[float] = []
    for want in (target, 4 * target):
        rank = math.ceil(want / scale)
        if rank > len(ranked):
            break
        theta = float(ranked[rank - 1])
        if admits(theta) > cap:
            # Stricter sums: the sample's, and the weights of lexemes it does not hold
            # (rare ones: a memory holding one passes alone).
            above = [float(x) for x in ranked[ranked > theta + _EPS]]
            above += [w for word, w in weights.items() if word not in lex.sample]
            above = [x for x in above if x > theta + _EPS]
            if above:
                theta = min(above)
        if not out or theta < out[-1] - _EPS:
            out.append(theta)
    if not out or len(ranked) * scale <= cap:
        out.append(0.0)
    return out


def candidate_tsquery(weights: dict[str, float], theta: float) -> str | None:
    """A tsquery text matching memories whose matched lexemes' weights add up to ``theta``.

    Built as ``(a & T(rest, theta - w_a)) | T(rest, theta)`` over lexemes heaviest first,
    pruning branches that cannot or must reach ``theta``. None when every match passes
    (``theta`` <= 0) or the tree would have more than ``MAX_LEAVES`` leaves: the caller
    then scores every match. Lexemes must be plain
    words (``\\w+``), quoted here as tsquery literals.
    """
    items = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
    suffix = [0.0] * (len(items) + 1)
    for i in range(len(items) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + items[i][1]
    leaves = 0

    def build(i: int, need: float) -> str | bool:
        nonlocal leaves
        if need <= _EPS:
            return True
        if suffix[i] < need - _EPS:
            return False
        word, w = items[i]
        leaves += 1
        if leaves > MAX_LEAVES:
            raise _TooLarge
        rest = build(i + 1, need - w)
        with_word: str | bool = False
        if rest is True:
            with_word = f"'{word}'"
        elif isinstance(rest, str):
            with_word = f"'{word}' & ({rest})"
        without = build(i + 1, need)
        if without is False:
            return with_word
        return without if with_word is False else f"{with_word} | {without}"

    try:
        tree = build(0, theta)
    except _TooLarge:
        return None
    return tree if isinstance(tree, str) else None


class _TooLarge(Exception):
    """The threshold tsquery would exceed MAX_LEAVES."""
