"""The learned ranker: a logistic model over per-candidate features, replacing hand-set
fusion weights (issue 14). Pure numpy, no new dependency; the model is a small versioned JSON
file shipped in ``memsvc/retrieval/models/`` with its training metrics, and
``memsvc ranker train`` fits one on a user's own labelled data.

A candidate is described by what the channels said of it (each channel's rank and score,
from ``explain``) and by the memory itself (content, speakers, when it happened). The same
``features()`` serves the service (``memsvc.retrieval.search``) and training (the labelled
data are search responses with ``explain``, written by ``bench/locomo.py --dump`` and
``bench/lme.py --dump``), so the two cannot drift apart.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

CHANNELS = ("vector", "fulltext", "time", "graph")
# The RRF constant of the rank features (the ``rrf`` preset's).
RANK_K = 20
# The ``rrf`` preset's channel weights (the candidates ``hybrid`` reorders come fused by
# them): its fused score is a feature, the learned model adjusts it rather than starting
# from nothing. Fixed here, not read from the preset: a packaged model was fitted on them.
HYBRID_WEIGHTS = {"vector": 1.0, "fulltext": 2.0, "time": 1.0, "graph": 0.25}
# A memory not valid at ``now`` (superseded, or not yet valid) keeps this share of its fused
# score, as in the ``rrf`` preset (``memsvc.retrieval.search``): the current statement of a
# changing fact outranks the one it replaced even where the query names the old one.
NOT_VALID_FACTOR = 0.5
FEATURES = (
    "rrf_hybrid",
    *(f"rrf_{c}" for c in CHANNELS),
    "vector_score",
    "fulltext_share",
    "channels",
    "word_overlap",
    "name_overlap",
    "speaker_named",
    "log_words",
    "log_age_days",
    "agent_turn",
    "agent_recalled",
)
# The features the packaged model is fitted on, chosen by recall@10 on both dev sets at once
# (bench/locomo.py and bench/lme.py --write turn --dump; LoCoMo cross-validated by
# conversation, so a fold never sees the conversation it is scored on), keeping only those
# that cost nothing where they were not fitted: on the other set, and on cubes written
# through ``/ingest`` by the ``learned`` write policy (memories of 2-3 merged turns, scored by
# turn recall@10 as bench/policies.py does):
# - ``agent_turn`` / ``agent_recalled``: on long chat histories the agent's own long replies
#   repeat the user's topic and took half the top 10 of questions about the user; they rank
#   lower unless the query recalls what the agent said ("you said", "our last chat").
# - ``speaker_named``: the question names who said it.
# Left out: BM25's share of the best score fitted both sets better (LoCoMo 0.789 -> 0.797
# cross-validated, LongMemEval 0.823 -> 0.857) but cost the merged cubes 0.013 (0.748 ->
# 0.734; 0.740 even with them in training); the turn's length ranks short extracted facts
# ("Lives in Denver") under chatty turns. With every feature the model fitted each dev set
# better and carried over worse.
USED = ("rrf_hybrid", "speaker_named", "agent_turn", "agent_recalled")
DEFAULT_MODEL = Path(__file__).with_name("models") / "ranker-v2.json"
# The features that read a candidate's content.
CONTENT_FEATURES = frozenset({"word_overlap", "name_overlap", "log_words"})

_STOP = frozenset(
    "a an the and or of to in on at for with is are was were be been am i you he she it we they"
    " my your his her its our their me him them us do did does done what when where which who"
    " whom how why that this these those there have has had can could would should will shall"
    " not no yes so as by from about into than then just also any some all".split()
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
# Speakers that are the agent itself (chat roles), not a person it talks with.
AGENT_ROLES = frozenset({"assistant", "ai", "agent", "bot", "model", "system"})
# A query about what the agent itself said before: "you said", "your suggestion", "our
# previous chat", "we talked about", "remind me".
_RECALLS_AGENT = re.compile(
    r"\byou\b[^.?!]{0,30}\b(sa(y|id)|t(ell|old)|mention(ed)?|suggest(ed)?|recommend(ed)?"
    r"|provided?|g(ive|ave)|shared?|list(ed)?|explain(ed)?|wr(ite|ote)|described?|advised?"
    r"|proposed?|came up with|named?|pick(ed)?)\b"
    r"|\byour\b[^.?!]{0,20}\b(suggestion|recommendation|advice|list|answer|response|idea"
    r"|tip|reply)s?\b"
    r"|\b(our|we)\b[^.?!]{0,20}\b(chat|conversation|discussion|talk|talked|discussed|spoke"
    r"|chatted)\b"
    r"|\bremind me\b",
    re.IGNORECASE,
)


def terms(text: str) -> set[str]:
    out = set()
    for w in _WORD.findall(text.lower()):
        w = w.removesuffix("'s").rstrip("'")
        if w and w not in _STOP:
            out.add(w[:-1] if len(w) > 3 and w.endswith("s") else w)
    return out


def names(query: str) -> set[str]:
    """Capitalised words of the query that do not start a sentence: names, places, titles."""
    out = set()
    for m in re.finditer(r"(?<![.?!]\s)(?<!^)\b([A-Z][a-zA-Z'-]+)", query):
        w = m.group(1).lower().removesuffix("'s")
        if w not in _STOP:
            out.add(w)
    return out


@dataclass
class Candidate:
    """What ``features`` reads of one candidate."""

    hits: Mapping[str, tuple[int, float]]  # channel -> (rank, score)
    content: str
    speakers: Sequence[str] = ()
    occurred_at: datetime | None = None
    created_at: datetime | None = None
    valid: bool = True  # valid at ``now``


def features(cands: Sequence[Candidate], query: str, now: datetime) -> np.ndarray:
    """The feature matrix (one row per candidate, columns ``FEATURES``)."""
    q_terms, q_names = terms(query), names(query)
    top_fulltext = max((c.hits["fulltext"][1] for c in cands if "fulltext" in c.hits), default=0)
    recalls_agent = bool(_RECALLS_AGENT.search(query))
    rows = []
    for c in cands:
        content_terms = terms(c.content)
        speakers = {s.lower() for s in c.speakers}
        # Only the agent spoke (a memory merging a user's turn with the reply is the user's).
        agents_only = bool(speakers) and speakers <= AGENT_ROLES
        said = content_terms | speakers
        when = c.occurred_at or c.created_at
        age = max((now - when).total_seconds() / 86400, 0.0) if when else 0.0
        ft = c.hits.get("fulltext")
        rrf = {ch: 1.0 / (RANK_K + c.hits[ch][0]) if ch in c.hits else 0.0 for ch in CHANNELS}
        rows.append(
            [
                sum(HYBRID_WEIGHTS[ch] * v for ch, v in rrf.items())
                * (1.0 if c.valid else NOT_VALID_FACTOR),
                *(rrf[ch] for ch in CHANNELS),
                c.hits["vector"][1] if "vector" in c.hits else 0.0,
                ft[1] / top_fulltext if ft and top_fulltext > 0 else 0.0,
                float(sum(1 for ch in CHANNELS if ch in c.hits)),
                len(q_terms & content_terms) / len(q_terms) if q_terms else 0.0,
                len(q_names & said) / len(q_names) if q_names else 0.0,
                1.0 if speakers & q_names else 0.0,
                math.log1p(len(c.content.split())),
                math.log1p(age),
                1.0 if agents_only else 0.0,
                1.0 if agents_only and recalls_agent else 0.0,
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))


@dataclass
class Ranker:
    """A fitted logistic model: ``score = ((x - mean) / scale) . weights + bias``."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    version: str = "custom"
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def reads_content(self) -> bool:
        """Whether a feature it weighs reads a candidate's content (the service then fetches
        it; the packaged model reads only channels, speakers and the query)."""
        return any(
            w != 0 for f, w in zip(FEATURES, self.weights, strict=True) if f in CONTENT_FEATURES
        )

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(((x - self.mean) / self.scale) @ self.weights + self.bias)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "features": list(FEATURES),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "metrics": self.metrics,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ranker:
        if list(data["features"]) != list(FEATURES):
            raise ValueError(
                f"ranker model has features {data['features']}, this version reads {FEATURES}"
            )
        return cls(
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            version=str(data.get("version", "custom")),
            metrics=dict(data.get("metrics", {})),
        )


@cache
def load(path: Path = DEFAULT_MODEL) -> Ranker:
    """A ranker model file (cached per path)."""
    return Ranker.from_json(json.loads(Path(path).read_text()))


# -- training --------------------------------------------------------------------------


@dataclass
class Question:
    """One labelled question: its candidates' features and which are relevant."""

    group: str
    x: np.ndarray
    y: np.ndarray
    relevant_total: int
    order: list[int] = field(default_factory=list)  # the candidates in the service's order


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _valid(memory: Mapping[str, Any], now: datetime | None) -> bool:
    """A memory of a search response is valid at ``now`` (``store.filters.valid_at``); with
    no ``now``, valid unless it has ended."""
    start, end = _parse_time(memory.get("valid_from")), _parse_time(memory.get("valid_to"))
    if now is None:
        return end is None
    return (start is None or start <= now) and (end is None or end > now)


def questions(lines: Iterable[Mapping[str, Any]]) -> list[Question]:
    """Labelled questions from search responses with ``explain`` (one per line: ``group``,
    ``query``, ``now``, ``results``, ``relevant`` memory ids, ``relevant_total``)."""
    out = []
    for line in lines:
        results = line["results"]
        now = _parse_time(line.get("now"))
        cands = []
        for r in results:
            m = r["memory"]
            cands.append(
                Candidate(
                    hits={
                        ch: (h["rank"], h["score"]) for ch, h in (r.get("explain") or {}).items()
                    },
                    content=m["content"],
                    speakers=[s["speaker"] for s in m.get("sources", []) if s.get("speaker")],
                    occurred_at=_parse_time(m.get("occurred_at")),
                    created_at=_parse_time(m.get("created_at")),
                    valid=_valid(m, now),
                )
            )
        now = now or max(
            (c.created_at for c in cands if c.created_at), default=datetime.fromtimestamp(0)
        )
        relevant = set(line["relevant"])
        y = np.asarray([1.0 if r["memory"]["id"] in relevant else 0.0 for r in results])
        x = features(cands, line["query"], now)
        total = int(line.get("relevant_total", len(relevant)))
        out.append(Question(line["group"], x, y, total, list(range(len(results)))))
    return out


def _set_of(q: Question) -> str:
    return q.group.split("/")[0]


def fit(
    qs: Sequence[Question], *, l2: float = 1.0, steps: int = 100, use: Sequence[str] = USED
) -> Ranker:
    """Logistic regression (Newton's method, L2) over the candidates of ``qs``, on the
    features named in ``use`` (the others get weight 0). Each data set (the group's prefix
    before ``/``) weighs the same and, within it, each question: neither a larger data set
    nor a long candidate list dominates what is learned."""
    x = np.vstack([q.x for q in qs])
    y = np.concatenate([q.y for q in qs])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a constant feature
    per_set: dict[str, int] = {}
    for q in qs:
        per_set[_set_of(q)] = per_set.get(_set_of(q), 0) + 1
    share = {name: len(qs) / len(per_set) / n for name, n in per_set.items()}
    w = np.concatenate([np.full(len(q.y), share[_set_of(q)] / max(len(q.y), 1)) for q in qs])
    mask = np.asarray([1.0 if f in use else 0.0 for f in FEATURES])
    z = np.hstack([(x - mean) / scale * mask, np.ones((len(x), 1))])
    beta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2 / len(qs))
    reg[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ beta)))
        grad = z.T @ (w * (p - y)) + reg * beta
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(reg + 1e-9)
        delta = np.linalg.solve(hess, grad)
        beta -= delta
        if np.abs(delta).max() < 1e-8:
            break
    return Ranker(weights=beta[:-1] * mask, bias=float(beta[-1]), mean=mean, scale=scale)


def recall_at(qs: Sequence[Question], scores: Sequence[np.ndarray] | None, k: int = 10) -> float:
    """Mean recall@k of ``qs`` ordered by ``scores`` (None: the service's own order)."""
    vals = []
    for i, q in enumerate(qs):
        if scores is None:
            top = q.order[:k]
        else:
            top = sorted(range(len(q.y)), key=lambda j: (-scores[i][j], j))[:k]
        vals.append(float(q.y[top].sum()) / q.relevant_total if q.relevant_total else 0.0)
    return float(np.mean(vals)) if vals else 0.0


def evaluate(ranker: Ranker, qs: Sequence[Question], k: int = 10) -> float:
    return recall_at(qs, [ranker.score(q.x) for q in qs], k)


def train(qs: Sequence[Question], *, version: str = "custom", folds: int = 5) -> Ranker:
    """Fit on all of ``qs`` and record, per data set (the group's prefix before ``/``), recall@10
    of the service's own order, of the model in sample, in grouped ``folds``-fold
    cross-validation, and trained on the other data sets only."""
    by_set: dict[str, list[Question]] = {}
    for q in qs:
        by_set.setdefault(_set_of(q), []).append(q)
    model = fit(qs)
    groups = sorted({q.group for q in qs})
    fold_of = {g: i % folds for i, g in enumerate(groups)}
    cv_scores: dict[int, np.ndarray] = {}
    for f in range(folds):
        held = [i for i, q in enumerate(qs) if fold_of[q.group] == f]
        if not held or len(held) == len(qs):
            continue
        m = fit([q for i, q in enumerate(qs) if fold_of[q.group] != f])
        for i in held:
            cv_scores[i] = m.score(qs[i].x)
    metrics: dict[str, Any] = {"questions": len(qs), "candidates": int(sum(len(q.y) for q in qs))}
    for name, own in by_set.items():
        idx = [i for i, q in enumerate(qs) if _set_of(q) == name]
        others = [q for q in qs if _set_of(q) != name]
        row: dict[str, Any] = {
            "questions": len(own),
            "service_order": round(recall_at(own, None), 4),
            "in_sample": round(evaluate(model, own), 4),
        }
        held = [i for i in idx if i in cv_scores]  # a fold of every group has no held-out
        if held:
            row[f"cv_{folds}fold"] = round(
                recall_at([qs[i] for i in held], [cv_scores[i] for i in held]), 4
            )
        if others:
            row["trained_on_others"] = round(evaluate(fit(others), own), 4)
        metrics[name] = row
    model.version, model.metrics = version, {"recall@10": metrics}
    return model
