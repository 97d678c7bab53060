"""Offline recall of a write policy's memories (used by ``bench/train_policy.py``).

Each dev question searches the memories of its own conversation (LoCoMo) or haystack
(LongMemEval) three ways, without the service: dense (MiniLM cosine), BM25, and an equal RRF
of the two (k = 60), the plain baselines of shared/data/README.md. Results map to the turns
they were made from (provenance), flattened in rank order without repeats and cut at 10:
recall@10 = evidence turns among them / evidence turns. ``store_all`` (one memory per turn)
is the reference the policy must keep 98% of.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

K = 10
RRF_K = 60
_STOP = frozenset(
    "a an the and or of to in on at for with is are was were be been am i you he she it we they"
    " my your his her its our their me him them us do did does what when where which who how"
    " that this these there have has had can could would should will not no so as by from about"
    " than then just also any some all".split()
)


@dataclass
class Memory:
    """A memory a policy would write: its messages' texts and the turns they are."""

    group: str
    texts: list[str]
    turns: list[int]

    def joined(self) -> str:
        return "\n".join(self.texts)


class HasQuestion(Protocol):
    group: str
    text: str
    evidence: set[int]


def _terms(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP]


def _bm25(
    docs: Sequence[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75
) -> np.ndarray:
    n = len(docs)
    avg = sum(len(d) for d in docs) / max(n, 1)
    df: Counter[str] = Counter(t for d in docs for t in set(d))
    tfs = [Counter(d) for d in docs]
    scores = np.zeros(n)
    for t in set(query):
        if t not in df:
            continue
        idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
        for i, tf in enumerate(tfs):
            f = tf.get(t, 0)
            if f:
                scores[i] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(docs[i]) / avg))
    return scores


def _flatten(order: Sequence[int], memories: Sequence[Memory]) -> list[int]:
    seen: list[int] = []
    for i in order:
        for t in memories[i].turns:
            if t not in seen:
                seen.append(t)
        if len(seen) >= K:
            break
    return seen[:K]


def recall(
    memories: Sequence[Memory],
    vecs: np.ndarray,
    questions: Sequence[HasQuestion],
    qvecs: np.ndarray,
) -> dict[str, float]:
    """Mean recall@10 of dense, BM25 and RRF search over ``memories`` (``vecs``: theirs)."""
    by_group: dict[str, list[int]] = {}
    for i, m in enumerate(memories):
        by_group.setdefault(m.group, []).append(i)
    terms = [_terms(m.joined()) for m in memories]
    out: dict[str, list[float]] = {"dense": [], "bm25": [], "rrf": []}
    for q, qv in zip(questions, qvecs, strict=True):
        idx = by_group.get(q.group, [])
        if not idx or not q.evidence:
            continue
        mine = [memories[i] for i in idx]
        dense = vecs[idx] @ qv
        sparse = _bm25([terms[i] for i in idx], _terms(q.text))
        rank_d = np.argsort(-dense, kind="stable")
        rank_s = np.argsort(-sparse, kind="stable")
        fused = np.zeros(len(idx))
        fused[rank_d] += 1.0 / (RRF_K + 1 + np.arange(len(idx)))
        fused[rank_s] += 1.0 / (RRF_K + 1 + np.arange(len(idx)))
        for name, order in (
            ("dense", rank_d),
            ("bm25", rank_s),
            ("rrf", np.argsort(-fused, kind="stable")),
        ):
            top = _flatten([int(i) for i in order], mine)
            out[name].append(len(q.evidence & set(top)) / len(q.evidence))
    return {name: round(float(np.mean(v)), 4) if v else 0.0 for name, v in out.items()}
