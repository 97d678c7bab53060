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
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Hits = dict[str, tuple[int, float]]

VARIANTS: dict[str, tuple[dict[str, float], int]] = {
    "hybrid": ({"vmax": 1.0, "fulltext": 2.0, "time": 1.0, "graph": 0.25}, 20),
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


def recall(q: Question, weights: dict[str, float], k: int, top: int = 10) -> float:
    scores = {}
    for mid, hits in q.candidates.items():
        s = sum(w / (k + hits[ch][0]) for ch, w in weights.items() if ch in hits)
        if s > 0:
            scores[mid] = s if mid in q.valid else s * 0.5  # search.NOT_VALID_FACTOR
    head = sorted(scores, key=lambda m: (-scores[m], m))[:top]
    return len(q.relevant & set(head)) / q.relevant_total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dumps", nargs="+", type=Path)
    ap.add_argument("--data", nargs="*", type=Path, default=[])
    args = ap.parse_args()
    kinds = kinds_of(args.data)
    for path in args.dumps:
        qs = load(path, kinds)
        print(f"{path} ({len(qs)} questions)")
        for name, (weights, k) in VARIANTS.items():
            got = [recall(q, weights, k) for q in qs]
            per: dict[str, list[float]] = defaultdict(list)
            for q, x in zip(qs, got, strict=True):
                per[q.kind].append(x)
            parts = " ".join(f"{kd}={statistics.fmean(v):.3f}" for kd, v in sorted(per.items()))
            print(f"  {name:28s} {statistics.fmean(got):.4f}  {parts if args.data else ''}")


if __name__ == "__main__":
    main()
