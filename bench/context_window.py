"""How much of the preceding turns a memory's full-text index should hold (offline).

    python bench/context_window.py --lme lme_dev.json --locomo locomo_dev.json

Plain BM25 (k1 1.2, b 0.75) over each question's own turns ("speaker: text" / "role:
content"), each turn indexed with the ``memsvc.store.indexing.CONTEXT_TURNS`` turns before
it in its session, each cut to its first N words (``None``: whole turns; 0: no context).
Prints turn recall@10 on both data sets (LoCoMo: categories 1-4, evidence turns; LongMemEval:
``has_answer`` turns), the metric of shared/data/README.md. No service, no model: seconds.
The choice of ``CONTEXT_WORDS`` rests on it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STOP = set(
    "a an the and or of to in on at for with is are was were be been i you he she it we they"
    " my your me do did does what when where which who how that this there have has had can"
    " could would should will not no yes so as by from about".split()
)
TURNS = 2
WINDOWS: list[int | None] = [0, 20, 30, 40, 60, None]


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP]


def bm25_top(docs: list[list[str]], query: str, k: int = 10) -> list[int]:
    n = len(docs)
    avg = statistics.fmean(len(d) for d in docs) or 1.0
    df: Counter[str] = Counter()
    for d in docs:
        df.update(set(d))
    tfs = [Counter(d) for d in docs]
    scores = [0.0] * n
    for term in set(words(query)):
        if term not in df:
            continue
        idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
        for i, tf in enumerate(tfs):
            f = tf.get(term, 0)
            if f:
                scores[i] += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * len(docs[i]) / avg))
    return sorted(range(n), key=lambda i: (-scores[i], i))[:k]


def indexed(turns: Sequence[tuple[Any, str]], window: int | None) -> list[list[str]]:
    docs = []
    for j, (thread, text) in enumerate(turns):
        before = [turns[i][1] for i in range(max(0, j - TURNS), j) if turns[i][0] == thread]
        if window is not None:
            before = [" ".join(t.split()[:window]) for t in before]
        docs.append(words(" ".join([text, *before])))
    return docs


def lme_recall(data: list[dict[str, Any]], window: int | None) -> float:
    out = []
    for q in data:
        turns, answers = [], set()
        for sid, session in zip(q["haystack_session_ids"], q["haystack_sessions"], strict=True):
            for t in session:
                if t.get("has_answer"):
                    answers.add(len(turns))
                turns.append((sid, f"{t['role']}: {t['content']}"))
        top = set(bm25_top(indexed(turns, window), q["question"]))
        out.append(len(answers & top) / len(answers))
    return statistics.fmean(out)


def locomo_recall(data: list[dict[str, Any]], window: int | None) -> float:
    out = []
    for conv in data:
        c, turns, ids = conv["conversation"], [], []
        n = 1
        while f"session_{n}" in c:
            for t in c[f"session_{n}"]:
                turns.append((n, f"{t['speaker']}: {t['text']}"))
                ids.append(t["dia_id"])
            n += 1
        docs = indexed(turns, window)
        for qa in conv["qa"]:
            evidence = set(qa.get("evidence", [])) & set(ids)
            if qa["category"] in (1, 2, 3, 4) and evidence:
                top = {ids[i] for i in bm25_top(docs, qa["question"])}
                out.append(len(evidence & top) / len(evidence))
    return statistics.fmean(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lme", required=True, type=Path)
    ap.add_argument("--locomo", required=True, type=Path)
    args = ap.parse_args()
    lme, locomo = json.loads(args.lme.read_text()), json.loads(args.locomo.read_text())
    print("context words per turn | lme turn recall@10 | locomo recall@10 (cat 1-4)")
    for window in WINDOWS:
        name = "whole turns" if window is None else str(window)
        print(f"{name:>22} | {lme_recall(lme, window):.3f} | {locomo_recall(locomo, window):.3f}")


if __name__ == "__main__":
    main()
