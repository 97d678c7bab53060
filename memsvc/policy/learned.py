"""The ``learned`` write policy (issue 11): a logistic model of "will this message be evidence
later?" over cheap per-message features, with rules on top that turn its score into
operations.

Per message, in order:

    retraction + matching neighbour  -> delete (target_id)
    restated fact, changed numbers   -> update (target_id, content = the message)
    filler and a score below ``skip`` -> skip
    a first-person profile statement -> insert into core (a short normalised line)
    the open memory has room and the message replies to it, continues it (similarity at
    least ``merge_similarity``) or scores below ``merge`` -> merge into it
    otherwise                        -> insert (semantic for preferences, else episodic)

A thread between people has one open memory. A thread where an agent (the assistant, a tool,
the system) answers a person has one per side: the agent's replies fold into the agent's
open memory (up to ``agent_max_messages``), and a person's turn folds into the person's
open memory only when it scores below ``split_merge`` (the agent's reply lies between
them). A question and a long answer held in one memory spent two of a reader's ten turns
on every hit; apart, each is found alone (bench/policies.py on LongMemEval, 6 questions:
recall@10 against store_all 79 % at 0.50 of its memories before, 100 % at 0.42 after;
with sentence passages, which raised store_all's recall by 0.08, 95 %).

The model is a versioned JSON file of numbers (``memsvc/policy/models/``: feature names,
means, scales, coefficients, thresholds, training metrics), scored with numpy: loading one
runs no code. ``train`` fits a new version with scikit-learn from rewards; ``bench/
train_policy.py`` fits the packaged one on the dev sets and says how its thresholds were set.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from memsvc.policy import cues
from memsvc.policy.decide import Batch, Decision, Neighbour, PolicyLayer, Situation

FEATURES = (
    "novelty",
    "max_sim",
    "top3_sim",
    "prev_sim",
    "log_words",
    "has_number",
    "has_time",
    "log_entities",
    "first_person",
    "question",
    "prev_question",
    "is_user",
    "same_speaker",
    "log_position",
    "filler",
    "preference",
    "profile",
)
DEFAULT_MODEL = Path(__file__).with_name("models") / "write-policy-v1.json"
# The rules' defaults; a model file carries its own (``thresholds``), training keeps them.
# ``skip`` and ``merge`` are set by ``train``; the caps were chosen with bench/train_policy.py
# (offline recall@10 against store_all on both dev sets): at most 2 messages a memory kept
# 0.51 of the messages on both sets; a third one within 1,200 characters cost LongMemEval
# recall (user turn, long reply, next request); within 600 it groups LoCoMo's short turns
# (0.37 of them kept). Within 400 kept 0.45 but recalled less (bench/policies.py, LoCoMo:
# 0.708 against 0.735 at 600).
RULES: dict[str, float] = {
    "skip": 0.2,  # P(evidence) below which a filler message is skipped
    "merge": 0.4,  # P(evidence) below which a message folds into the open memory
    "merge_similarity": 0.5,  # similarity to the previous message that continues its memory
    "update_similarity": 0.85,  # a neighbour this close, with other numbers: an update
    "delete_similarity": 0.55,  # a neighbour this close to a retraction: deleted
    "max_messages": 3,  # messages per memory
    "max_chars": 600,  # a memory takes a third message only within this many characters
    "core_max_words": 40,  # a longer message is more than a profile statement
    # Updates and deletes come from short messages not written by the assistant: a restated
    # fact or a retraction is a sentence or two; long replies restate whole answers.
    "change_max_words": 60,
    # An agent's replies to a person fold into one memory of the thread, this many at most;
    # the person's turns between them fold into the person's open memory when they score
    # below ``split_merge``.
    "agent_max_messages": 8,
    "split_merge": 0.3,
}
_LAYERS: dict[str, PolicyLayer] = {"core": "core", "semantic": "semantic", "episodic": "episodic"}
# ``train`` refuses fewer examples, or fewer of either class.
MIN_EXAMPLES = 20
MIN_PER_CLASS = 3


def features(s: Situation, prev: Situation | None) -> dict[str, float]:
    """The features of one message (``FEATURES``); ``prev``: the message before it in the
    thread, None for the first of a request (then the thread's last memory stands in)."""
    text = s.message.content
    sims = sorted((n.similarity for n in s.neighbours), reverse=True)
    top = sims[0] if sims else 0.0
    if prev is not None:
        prev_sim = float(np.dot(s.embedding, prev.embedding))
        prev_question = cues.question(prev.message.content)
        same_speaker = 1.0 if prev.message.speaker == s.message.speaker else 0.0
    elif s.last_memory is not None:
        prev_sim = s.last_memory.similarity
        prev_question = cues.question(s.last_memory.content[-300:])
        same_speaker = 0.0
    else:
        prev_sim = prev_question = same_speaker = 0.0
    return {
        "novelty": 1.0 - top,
        "max_sim": top,
        "top3_sim": float(np.mean(sims[:3])) if sims else 0.0,
        "prev_sim": prev_sim,
        "log_words": math.log1p(len(cues.words(text))),
        "has_number": 1.0 if cues.has_number(text) else 0.0,
        "has_time": 1.0 if cues.has_time(text) else 0.0,
        "log_entities": math.log1p(cues.entities(text)),
        "first_person": 1.0 if cues.first_person(text) else 0.0,
        "question": cues.question(text),
        "prev_question": prev_question,
        "is_user": 1.0 if s.message.role == "user" else 0.0,
        "same_speaker": same_speaker,
        "log_position": math.log1p(s.position),
        "filler": cues.filler(text),
        "preference": 1.0 if cues.preference(text) else 0.0,
        "profile": 1.0 if cues.profile(text) else 0.0,
    }


@dataclass
class LearnedModel:
    """A fitted logistic model: ``P = sigmoid(((x - mean) / scale) . coef + intercept)``."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    thresholds: dict[str, float] = field(default_factory=lambda: dict(RULES))
    version: int = 1
    data: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def score(self, feats: Mapping[str, float]) -> float:
        """P(the message is worth keeping: evidence later)."""
        x = np.asarray([feats.get(name, 0.0) for name in FEATURES], dtype=np.float64)
        z = float(((x - self.mean) / self.scale) @ self.coef + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def rule(self, name: str) -> float:
        return self.thresholds.get(name, RULES[name])

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "write-policy",
            "version": self.version,
            "data": self.data,
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "thresholds": self.thresholds,
            "metrics": self.metrics,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LearnedModel:
        """A model from its JSON form; ValueError when it was fitted on other features."""
        if list(data["features"]) != list(FEATURES):
            raise ValueError(
                f"write-policy model has features {data['features']}, this version reads {FEATURES}"
            )
        arrays = [np.asarray(data[k], dtype=np.float64) for k in ("coef", "mean", "scale")]
        if any(a.shape != (len(FEATURES),) for a in arrays) or (arrays[2] <= 0).any():
            raise ValueError("write-policy model: coef, mean and scale must match the features")
        unknown = set(data.get("thresholds", {})) - set(RULES)
        if unknown:
            raise ValueError(f"write-policy model: unknown thresholds {sorted(unknown)}")
        return cls(
            coef=arrays[0],
            intercept=float(data["intercept"]),
            mean=arrays[1],
            scale=arrays[2],
            thresholds={**RULES, **{k: float(v) for k, v in data.get("thresholds", {}).items()}},
            version=int(data["version"]),
            data=str(data.get("data", "")),
            metrics=dict(data.get("metrics", {})),
        )

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> LearnedModel:
        """A model file (plain JSON: loading runs no code)."""
        return cls.from_json(json.loads(Path(path).read_text()))


@cache
def packaged() -> LearnedModel:
    """The model shipped with the package (read once)."""
    return LearnedModel.load(DEFAULT_MODEL)


@dataclass
class _Open:
    """The memory the thread's next message may merge into."""

    target_message: int | None
    target_id: uuid.UUID | None  # a stored memory, when target_message is None
    messages: int
    chars: int


def _side(s: Situation | None) -> str:
    """Whose open memory a message joins: ``user`` for a person's message, else ``agent``
    (the assistant, a tool, the system)."""
    return "user" if s is None or s.message.role == "user" else "agent"


def _follows(s: Situation, prev: Situation | None, open_: _Open | None) -> bool:
    """Whether the open memory ``s`` may join holds the message just before it."""
    if prev is not None:
        return _side(prev) == _side(s)
    last = s.last_memory
    return open_ is not None and last is not None and open_.target_id == last.id


def _may_change(s: Situation, model: LearnedModel) -> bool:
    """Whether the message may update or delete a memory (short, not the assistant's)."""
    size = len(cues.words(s.message.content))
    return s.message.role != "assistant" and size <= model.rule("change_max_words")


def _update_target(s: Situation, model: LearnedModel) -> tuple[Neighbour, float] | None:
    """A neighbour that states the same fact as the message with other numbers."""
    mine = cues.numbers(s.message.content)
    if not mine or not _may_change(s, model):
        return None
    for n in s.neighbours:
        if n.similarity < model.rule("update_similarity"):
            break
        theirs = cues.numbers(n.content)
        a, b = cues.content_terms(s.message.content), cues.content_terms(n.content)
        shared = len(a & b) / max(len(a | b), 1)
        if theirs and theirs != mine and shared >= 0.5:
            return n, n.similarity
    return None


def _delete_target(s: Situation, model: LearnedModel) -> Neighbour | None:
    """The neighbour a retraction takes back: close, and sharing its content words."""
    if not cues.retraction(s.message.content) or not _may_change(s, model):
        return None
    said = cues.content_terms(s.message.content)
    for n in s.neighbours:
        if n.similarity < model.rule("delete_similarity"):
            break
        if n.layer != "core" and said & cues.content_terms(n.content):
            return n
    return None


class LearnedPolicy:
    """The ``learned`` write policy over a ``LearnedModel`` (default: the packaged one)."""

    name = "learned"

    def __init__(self, model: LearnedModel | None = None) -> None:
        self.model = model if model is not None else packaged()
        self.version = self.model.version

    async def decide(self, batch: Batch) -> list[Decision]:
        # Patterns and a dot product per message: microseconds, no need for a thread.
        return self.decide_now(batch)

    def decide_now(self, batch: Batch) -> list[Decision]:
        """One decision per situation of ``batch``, in order (synchronous).

        A thread where an agent answers a person keeps two open memories: the person's
        messages fold into the person's, the agent's replies into the agent's (a turn and
        its long reply are two memories, each found on its own); a thread of people only
        keeps one."""
        out: list[Decision] = []
        opens: dict[str, _Open] = {}
        first = batch.situations[0] if batch.situations else None
        split = any(_side(s) == "agent" for s in batch.situations) or (
            first is not None and "agent" in first.side_memories
        )
        if first is not None and split and first.side_memories:
            for side, (mem, count) in first.side_memories.items():
                opens[side] = _Open(None, mem.id, count, len(mem.content))
        elif first is not None and first.last_memory is not None:
            last = first.last_memory
            opens["user"] = _Open(None, last.id, first.last_memory_messages, len(last.content))
        prev: Situation | None = None
        for s in batch.situations:
            side = _side(s) if split else "user"
            open_ = opens.get(side)
            feats = features(s, prev)
            score = self.model.score(feats)
            if split and side == "agent":
                d = self._agent(s, open_)
            else:
                d = self._one(s, feats, score, open_, follows=not split or _follows(s, prev, open_))
            d.score, d.features = score, feats
            out.append(d)
            size = len(s.message.content)
            if d.operation == "merge" and open_ is not None:
                open_.messages += 1
                open_.chars += size
            elif d.operation == "insert" and d.layer != "core":
                opens[side] = _Open(s.message.index, None, 1, size)
            elif d.operation != "skip":
                opens.pop(side, None)  # a core line, an update or a delete: nothing to continue
            prev = s
        return out

    def _agent(self, s: Situation, open_: _Open | None) -> Decision:
        """An agent's reply to a person: folded into the agent's open memory of the thread
        while it has room (``agent_max_messages``), else a new memory."""
        if open_ is not None and open_.messages < self.model.rule("agent_max_messages"):
            return Decision(
                "merge",
                target_message=open_.target_message,
                target_id=open_.target_id if open_.target_message is None else None,
                reason="merge: the agent's replies of the thread share a memory",
            )
        return Decision("insert", layer="episodic", reason="insert: the agent's replies")

    def _room(self, open_: _Open, size: int) -> bool:
        """Whether the open memory takes a message of ``size`` characters: any second one (a
        turn and its reply belong together), a third or later only within ``max_chars``."""
        return open_.messages < self.model.rule("max_messages") and (
            open_.messages == 1 or open_.chars + size <= self.model.rule("max_chars")
        )

    def _one(
        self,
        s: Situation,
        f: Mapping[str, float],
        score: float,
        open_: _Open | None,
        follows: bool = True,
    ) -> Decision:
        m, text = self.model, s.message.content
        gone = _delete_target(s, m)
        if gone is not None:
            return Decision(
                "delete",
                target_id=gone.id,
                reason=f"delete: the message retracts a memory (sim {gone.similarity:.2f})",
            )
        changed = _update_target(s, m)
        if changed is not None:
            n, sim = changed
            layer = _LAYERS.get(n.layer, "episodic")
            return Decision(
                "update",
                layer=layer,
                target_id=n.id,
                content=text,
                reason=f"update: restates a memory with other numbers (sim {sim:.2f})",
            )
        if f["filler"] >= 0.5 and score < m.rule("skip"):
            return Decision("skip", reason=f"skip: filler (score {score:.2f})")
        line = cues.profile(text) if s.message.role == "user" else None
        if line is not None and len(cues.words(text)) <= m.rule("core_max_words"):
            return Decision(
                "insert", layer="core", content=line, reason="core: a profile statement"
            )
        if open_ is not None and self._room(open_, len(text)):
            why = None
            if not follows:  # the open memory is not the message just before
                if score < m.rule("split_merge"):
                    why = f"little new on its own (score {score:.2f})"
            elif f["prev_question"] >= 0.7 and f["same_speaker"] == 0.0:
                why = f"reply to the question before it (sim {f['prev_sim']:.2f})"
            elif f["prev_sim"] >= m.rule("merge_similarity"):
                why = f"continues the message before it (sim {f['prev_sim']:.2f})"
            elif score < m.rule("merge"):
                why = f"little new on its own (score {score:.2f})"
            if why is not None:
                return Decision(
                    "merge",
                    target_message=open_.target_message,
                    target_id=open_.target_id if open_.target_message is None else None,
                    reason=f"merge: {why}",
                )
        semantic = f["preference"] == 1.0 and f["has_time"] == 0.0
        return Decision(
            "insert",
            layer="semantic" if semantic else "episodic",
            reason=f"insert: {'a preference or habit' if semantic else 'an event'}"
            f" (score {score:.2f}, novelty {f['novelty']:.2f})",
        )


# -- training --------------------------------------------------------------------------


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (ties count half); 0.5 when a class is missing."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels) == 1
    pos, neg = int(y.sum()), int((~y).sum())
    if not pos or not neg:
        return 0.5
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # Average ranks of tied scores (1-based).
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def matrix(rows: Sequence[Mapping[str, float]]) -> np.ndarray:
    return np.asarray([[r.get(n, 0.0) for n in FEATURES] for r in rows], dtype=np.float64)


def train(
    examples: Sequence[tuple[Mapping[str, float], int]],
    *,
    version: int,
    data: str,
    skip_loss: float = 0.02,
    merge_loss: float = 0.5,
    rules: Mapping[str, float] | None = None,
) -> LearnedModel:
    """Fit a model on (features, label) pairs (1: the memory was later used).

    ``skip`` is set where at most ``skip_loss`` of the positives score below it, ``merge``
    where ``merge_loss`` of them do (a folded message stays findable through its memory).
    ValueError with fewer than ``MIN_EXAMPLES`` examples or ``MIN_PER_CLASS`` of a class.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(examples) < MIN_EXAMPLES:
        raise ValueError(f"{len(examples)} examples; training needs at least {MIN_EXAMPLES}")
    y = np.asarray([1 if label else 0 for _, label in examples])
    positives = int(y.sum())
    if min(positives, len(y) - positives) < MIN_PER_CLASS:
        raise ValueError(
            f"{positives} positive and {len(y) - positives} negative examples; training needs"
            f" at least {MIN_PER_CLASS} of each"
        )
    x = matrix([f for f, _ in examples])
    scaler = StandardScaler().fit(x)
    fit = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
    fit.fit(scaler.transform(x), y)
    model = LearnedModel(
        coef=np.asarray(fit.coef_[0], dtype=np.float64),
        intercept=float(fit.intercept_[0]),
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        thresholds={**RULES, **(rules or {})},
        version=version,
        data=data,
    )
    p = np.asarray([model.score(f) for f, _ in examples])
    model.thresholds["skip"] = round(float(np.quantile(p[y == 1], skip_loss)), 4)
    model.thresholds["merge"] = round(float(np.quantile(p[y == 1], merge_loss)), 4)
    model.metrics = {
        "examples": len(y),
        "positives": positives,
        # On the training examples themselves (in-sample) ...
        **evaluate(model, examples),
        # ... and held out: each example scored by a model fitted without its fold.
        "cv_auc": _cv_auc(x, y),
    }
    return model


def _cv_auc(x: np.ndarray, y: np.ndarray, folds: int = 5) -> float | None:
    """AUC of out-of-fold scores (stratified, seeded); None when a class has fewer
    examples than folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if min(int(y.sum()), int(len(y) - y.sum())) < folds:
        return None
    p = np.zeros(len(y))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        fit = make_pipeline(
            StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
        )
        fit.fit(x[train], y[train])
        p[test] = fit.predict_proba(x[test])[:, 1]
    return round(auc(p.tolist(), y.tolist()), 4)


def evaluate(
    model: LearnedModel, examples: Sequence[tuple[Mapping[str, float], int]]
) -> dict[str, float]:
    """AUC and accuracy of ``model`` on ``examples``, with the share of messages (and of
    positives) that score below its skip and merge thresholds."""
    y = np.asarray([1 if label else 0 for _, label in examples])
    p = np.asarray([model.score(f) for f, _ in examples])
    filler = np.asarray([f.get("filler", 0.0) >= 0.5 for f, _ in examples])
    skipped = filler & (p < model.rule("skip"))
    pos = y == 1
    return {
        "auc": round(auc(p.tolist(), y.tolist()), 4),
        "accuracy": round(float(((p >= 0.5) == pos).mean()), 4),
        "skipped": round(float(skipped.mean()), 4),
        "positives_skipped": round(float(skipped[pos].mean()) if pos.any() else 0.0, 4),
        "below_merge": round(float((p < model.rule("merge")).mean()), 4),
        "kept": round(float(1.0 - skipped.mean()), 4),
        "positives_kept": round(float(1.0 - skipped[pos].mean()) if pos.any() else 1.0, 4),
    }
