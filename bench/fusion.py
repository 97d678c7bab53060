"""Fusion variants scored offline from candidate dumps: no service, seconds a run.

    python bench/fusion.py DUMP.jsonl [DUMP.jsonl ...] [--data locomo_dev.json lme_dev.json]

A dump is what ``bench/locomo.py --dump`` / ``bench/lme.py --dump`` write (add
``--dump-passages`` so long memories' passage vectors are their own channel). Each
question's candidates carry every channel's rank, so any weighted RRF of those channels is
recomputed here and scored like the benches: recall@10 of the first 10 memories (one turn
each in both benches) over all the question's relevant turns. ``vmax`` is the vector
channel as the presets run it (each memory by its best vector, its own or a passage's),
rebuilt from the ``vector`` and ``passage`` scores. Candidates are the dump search's top
200, so a variant's head is exact as long as it lies within them (the ``hybrid`` row
reproduces the bench's own figure: a check). ``--data`` adds per category / type figures.

Besides weighted RRF, score-based fusion over each channel's raw scores, normalised per
query over the channel's list: CombSUM / CombMNZ of min-max, top-score (``max``: BM25 / the
query's best BM25) or z scores, with the preset's weights or equal ones, a memory a channel
missed getting 0 or (``min``) the channel's lowest; RRF plus a bonus from normalised scores
(``rrf+``); RRF scaled by score / top score; and a one-parameter convex vector/BM25 mix.
Each row gives the questions it wins / loses against ``hybrid``; with two dumps, each
family's best on one set is reported on the other. Measured (dumps of 2026-12-02, turn
recall@10, hybrid 0.7857 LoCoMo / 0.790 LME): no score variant beats ``hybrid`` on both
sets; the best on LME (RRF plus BM25's min-max score, 0.840) ties on LoCoMo (0.7862, +4 -6
questions), the best on LoCoMo (RRF plus BM25 / top BM25, 0.7962) loses on LME (0.773).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Hits = dict[str, tuple[int, float]]
Scores = dict[str, float]
Fuser = Callable[["Question"], Scores]

HYBRID = {"vmax": 1.0, "fulltext": 2.0, "time": 1.0, "graph": 0.25}
EQUAL = {"vmax": 1.0, "fulltext": 1.0, "time": 1.0, "graph": 1.0}

RRF_VARIANTS: dict[str, tuple[dict[str, float], int]] = {
    "hybrid": (HYBRID, 20),
    "vector (vmax) alone": ({"vmax": 1.0}, 20),
    "vector own alone": ({"vector": 1.0}, 20),
    "passage alone": ({"passage": 1.0}, 20),
    "bm25 alone": ({"fulltext": 1.0}, 20),
    "rrf60 vmax+bm25": ({"vmax": 1.0, "fulltext": 1.0}, 60),
    "hybrid, no time": ({"vmax": 1.0, "fulltext": 2.0, "graph": 0.25}, 20),
    "hybrid, time 0.5": ({"vmax": 1.0, "fulltext": 2.0, "time": 0.5, "graph": 0.25}, 20),
    "hybrid, own vector": ({"vector": 1.0, "fulltext": 2.0, "time": 1.0, "graph": 0.25}, 20),
    **{
        f"hybrid, own + passage {w}": (
            {"vector": 1.0, "passage": w, "fulltext": 2.0, "time": 1.0, "graph": 0.25},
            20,
        )
        for w in (0.25, 0.5, 1.0)
    },
    **{f"own + passage {w} (k 20)": ({"vector": 1.0, "passage": w}, 20) for w in (0.1, 0.25)},
}


@dataclass
class Question:
    group: str
    query: str
    kind: str
    candidates: dict[str, Hits]
    valid: set[str]
    relevant: set[str]
    relevant_total: int


def kinds_of(paths: list[Path]) -> dict[str, str]:
    """Question text or id -> LoCoMo category / LongMemEval type."""
    out: dict[str, str] = {}
    for path in paths:
        for rec in json.loads(path.read_text()):
            if "qa" in rec:
                for qa in rec["qa"]:
                    out.setdefault(qa["question"], f"cat {qa['category']}")
            else:
                out[rec["question_id"]] = rec["question_type"]
    return out


def load(path: Path, kinds: dict[str, str]) -> list[Question]:
    qs = []
    for line in path.read_text().splitlines():
        d: dict[str, Any] = json.loads(line)
        if not d["relevant_total"]:
            continue
        cands: dict[str, Hits] = {}
        valid = set()
        for r in d["results"]:
            mid = r["memory"]["id"]
            cands[mid] = {ch: (h["rank"], h["score"]) for ch, h in (r["explain"] or {}).items()}
            if r["memory"]["valid_to"] is None:
                valid.add(mid)
        best = {
            mid: max(h[ch][1] for ch in ("vector", "passage") if ch in h)
            for mid, h in cands.items()
            if "vector" in h or "passage" in h
        }
        for rank, mid in enumerate(sorted(best, key=lambda m: (-best[m], m)), start=1):
            cands[mid]["vmax"] = (rank, best[mid])
        group = d["group"]
        kind = kinds.get(group.split("/", 1)[1]) or kinds.get(d["query"]) or "?"
        qs.append(
            Question(group, d["query"], kind, cands, valid, set(d["relevant"]), d["relevant_total"])
        )
    return qs


def channels(q: Question, names: Iterable[str]) -> dict[str, Scores]:
    """Each channel's raw scores over its list (as far as the candidates show it)."""
    out: dict[str, Scores] = {ch: {} for ch in names}
    for mid, hits in q.candidates.items():
        for ch in out:
            if ch in hits:
                out[ch][mid] = hits[ch][1]
    return {ch: sc for ch, sc in out.items() if sc}


def normalise(scores: Scores, norm: str) -> Scores:
    """One channel's scores for one query on a common scale: ``minmax`` to [0, 1], ``max``
    divided by the top score (BM25 "dense-normalised"), ``z`` standardised, ``raw`` as is."""
    vals = list(scores.values())
    hi, lo = max(vals), min(vals)
    if norm == "minmax":
        return {m: (s - lo) / (hi - lo) if hi > lo else 1.0 for m, s in scores.items()}
    if norm == "max":
        return {m: s / hi if hi > 0 else 0.0 for m, s in scores.items()}
    if norm == "z":
        mu, sd = statistics.fmean(vals), statistics.pstdev(vals)
        return {m: (s - mu) / sd if sd > 0 else 0.0 for m, s in scores.items()}
    return dict(scores)


def rrf(weights: dict[str, float], k: int) -> Fuser:
    """Weighted reciprocal-rank fusion (``search.fuse``)."""

    def fuser(q: Question) -> Scores:
        out = {}
        for mid, hits in q.candidates.items():
            s = sum(w / (k + hits[ch][0]) for ch, w in weights.items() if ch in hits)
            if s > 0:
                out[mid] = s
        return out

    return fuser


def comb(
    weights: dict[str, float], norm: str, *, mnz: bool = False, missing: str = "zero"
) -> Fuser:
    """CombSUM (CombMNZ: times the number of channels that found it) of per-query normalised
    scores; a memory a channel did not find gets 0 from it, or (``missing="min"``) the
    channel's lowest score."""

    def fuser(q: Question) -> Scores:
        norms = {ch: normalise(sc, norm) for ch, sc in channels(q, weights).items()}
        floor = {ch: min(sc.values()) if missing == "min" else 0.0 for ch, sc in norms.items()}
        out = {}
        for mid in q.candidates:
            found = [ch for ch in norms if mid in norms[ch]]
            if not found:
                continue
            s = sum(weights[ch] * norms[ch].get(mid, floor[ch]) for ch in norms)
            out[mid] = s * len(found) if mnz else s
        if norm == "z":  # shift positive, so NOT_VALID_FACTOR still lowers a score
            lo = min(out.values(), default=0.0)
            out = {m: s - lo + 1e-9 for m, s in out.items()}
        return out

    return fuser


def rrf_plus(
    weights: dict[str, float],
    k: int,
    norm: str,
    beta: float = 1.0,
    bonus: Iterable[str] | None = None,
) -> Fuser:
    """RRF plus, per channel (of ``bonus``, default all), ``beta`` times its rank-1 share
    scaled by the normalised score: a channel's confident hits gain up to one more top rank."""
    base = rrf(weights, k)
    boosted = list(weights if bonus is None else bonus)

    def fuser(q: Question) -> Scores:
        out = base(q)
        for ch, sc in channels(q, boosted).items():
            for mid, x in normalise(sc, norm).items():
                out[mid] += beta * weights[ch] / (k + 1) * x
        return out

    return fuser


def rrf_times(weights: dict[str, float], k: int) -> Fuser:
    """RRF with each channel's share scaled by its score over its top score."""

    def fuser(q: Question) -> Scores:
        norms = {ch: normalise(sc, "max") for ch, sc in channels(q, weights).items()}
        out = {}
        for mid, hits in q.candidates.items():
            s = sum(
                w / (k + hits[ch][0]) * norms[ch][mid] for ch, w in weights.items() if ch in hits
            )
            if s > 0:
                out[mid] = s
        return out

    return fuser


def convex(alpha: float, norm: str) -> Fuser:
    """``alpha`` x vector + (1 - alpha) x BM25, each normalised (time joins at the vector's
    weight, as in the preset's ratio)."""
    return comb({"vmax": alpha, "fulltext": 1 - alpha, "time": alpha, "graph": alpha / 4}, norm)


W = {"hyb w": HYBRID, "eq w": EQUAL}
SCORE_VARIANTS: dict[str, Fuser] = {
    **{
        f"{fam} {norm} {wn}{' min' if missing == 'min' else ''}": comb(
            w, norm, mnz=fam == "mnz", missing=missing
        )
        for fam in ("sum", "mnz")
        for norm in ("minmax", "max", "z")
        for wn, w in W.items()
        for missing in ("zero", "min")
        if not (norm == "minmax" and missing == "min")  # the same: min-max's floor is 0
    },
    "sum cos + bm25/max hyb w": comb(HYBRID, "max"),  # vector raw: cosines need no scale
    **{
        f"rrf+ {norm} {wn}": rrf_plus(w, 20, norm)
        for norm in ("minmax", "max")
        for wn, w in W.items()
    },
    "rrf+ bm25/max only hyb w": rrf_plus(HYBRID, 20, "max", bonus=["fulltext"]),
    "rrf+ bm25 minmax only hyb w": rrf_plus(HYBRID, 20, "minmax", bonus=["fulltext"]),
    **{f"rrf x s/max {wn}": rrf_times(w, 20) for wn, w in W.items()},
}
SWEEPS: dict[str, dict[str, Fuser]] = {
    "convex minmax a": {f"{a:.1f}": convex(a, "minmax") for a in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)},
    "convex max a": {f"{a:.1f}": convex(a, "max") for a in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)},
    "rrf+ max hyb w, beta": {
        f"{b:g}": rrf_plus(HYBRID, 20, "max", b) for b in (0.25, 0.5, 1.0, 2.0, 4.0)
    },
    "rrf+ minmax hyb w, beta": {
        f"{b:g}": rrf_plus(HYBRID, 20, "minmax", b) for b in (0.25, 0.5, 1.0, 2.0, 4.0)
    },
    "rrf+ bm25 minmax only hyb w, beta": {
        f"{b:g}": rrf_plus(HYBRID, 20, "minmax", b, bonus=["fulltext"])
        for b in (0.25, 0.5, 1.0, 2.0, 4.0)
    },
    "rrf hyb w, k": {f"{k}": rrf(HYBRID, k) for k in (5, 10, 20, 40, 60)},
}


def recall(q: Question, fuser: Fuser, top: int = 10) -> float:
    scores = fuser(q)
    for mid in scores:
        if mid not in q.valid:
            scores[mid] *= 0.5  # search.NOT_VALID_FACTOR
    head = sorted(scores, key=lambda m: (-scores[m], m))[:top]
    return len(q.relevant & set(head)) / q.relevant_total


def scored(qs: list[Question], fuser: Fuser) -> tuple[float, dict[str, float], list[float]]:
    """Mean recall@10, overall and per category / type, and each question's."""
    got = [recall(q, fuser) for q in qs]
    per: dict[str, list[float]] = defaultdict(list)
    for q, x in zip(qs, got, strict=True):
        per[q.kind].append(x)
    mean = statistics.fmean(got)
    return mean, {kd: statistics.fmean(v) for kd, v in sorted(per.items())}, got


def cross(sets: dict[str, list[Question]], family: dict[str, Fuser], label: str) -> None:
    """Choose the family's best on one set, report it on each other one."""
    means = {v: {n: scored(qs, f)[0] for n, qs in sets.items()} for v, f in family.items()}
    for a in sets:
        best = max(family, key=lambda n: (means[n][a], -list(family).index(n)))
        others = " ".join(f"{b}={means[best][b]:.4f}" for b in sets if b != a)
        print(f"  {label}: chosen on {a}: {best!r} ({means[best][a]:.4f}) -> {others}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dumps", nargs="+", type=Path)
    ap.add_argument("--data", nargs="*", type=Path, default=[])
    args = ap.parse_args()
    kinds = kinds_of(args.data)
    sets = {path.stem: load(path, kinds) for path in args.dumps}
    variants: dict[str, Fuser] = {n: rrf(w, k) for n, (w, k) in RRF_VARIANTS.items()}
    variants |= SCORE_VARIANTS
    variants |= {f"{s} {p}": f for s, fam in SWEEPS.items() for p, f in fam.items()}
    for name, qs in sets.items():
        print(f"{name} ({len(qs)} questions; +n/-n: questions above / below hybrid)")
        base = scored(qs, variants["hybrid"])[2]
        for vname, fuser in variants.items():
            mean, per, got = scored(qs, fuser)
            up = sum(x > b for x, b in zip(got, base, strict=True))
            down = sum(x < b for x, b in zip(got, base, strict=True))
            parts = " ".join(f"{kd}={x:.3f}" for kd, x in per.items())
            print(f"  {vname:40s} {mean:.4f} +{up:<3d} -{down:<3d} {parts if args.data else ''}")
    if len(sets) > 1:
        print("chosen on one set, reported on the other")
        cross(sets, SCORE_VARIANTS, "score variants")
        for label, fam in SWEEPS.items():
            cross(sets, {f"{label} {p}": f for p, f in fam.items()}, label)


if __name__ == "__main__":
    main()
