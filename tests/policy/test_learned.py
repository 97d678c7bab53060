"""The ``learned`` write policy: features, rules, the model file and training (no database;
real MiniLM embeddings)."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from memsvc.policy.decide import Batch, Decision, Message, Neighbour, Situation
from memsvc.policy.learned import (
    DEFAULT_MODEL,
    FEATURES,
    LearnedModel,
    LearnedPolicy,
    auc,
    features,
    packaged,
    train,
)
from memsvc.runtime import SentenceTransformerEmbedder


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(device="cpu", backend="torch")


class Thread:
    """Builds situations the way the ingest engine does: each message's neighbours are the
    earlier ``stored`` texts, with their real cosine similarity."""

    def __init__(self, embedder: SentenceTransformerEmbedder, stored: Sequence[str] = ()) -> None:
        self.embedder = embedder
        self.stored = [
            Neighbour(id=uuid.uuid4(), content=t, layer="episodic", kind="message", similarity=0)
            for t in stored
        ]
        self.vecs = embedder.embed(list(stored))

    def batch(
        self, *turns: tuple[str, ...], last: Neighbour | None = None, last_messages: int = 0
    ) -> Batch:
        """Situations of ``turns``: (role, text) or (role, text, speaker's name)."""
        vecs = self.embedder.embed([turn[1] for turn in turns])
        out = []
        for i, ((role, text, *name), vec) in enumerate(zip(turns, vecs, strict=True)):
            sims = self.vecs @ vec if len(self.stored) else np.zeros(0)
            near = sorted(
                (
                    Neighbour(n.id, n.content, n.layer, n.kind, float(sim))
                    for n, sim in zip(self.stored, sims, strict=True)
                ),
                key=lambda n: -n.similarity,
            )
            out.append(
                Situation(
                    message=Message(
                        index=i,
                        role=role,
                        content=text,
                        name=name[0] if name else None,
                        session_id="s1",
                    ),
                    embedding=vec,
                    neighbours=near[:5],
                    position=i,
                    last_memory=last if i == 0 else None,
                    last_memory_messages=last_messages if i == 0 else 0,
                )
            )
        return Batch(situations=out, user_id="u1")


def decide(batch: Batch, policy: LearnedPolicy | None = None) -> list[Decision]:
    return asyncio.run((policy or LearnedPolicy()).decide(batch))


def test_features_are_deterministic_and_read_the_words(
    embedder: SentenceTransformerEmbedder,
) -> None:
    thread = Thread(embedder, ["We adopted a puppy in May."])
    batch = thread.batch(
        ("user", "Where did you go on holiday last summer?"),
        ("assistant", "We went to Lisbon with Maria on 3 July."),
        ("user", "haha ok thanks!"),
    )
    s = batch.situations
    first = [features(s[0], None), features(s[1], s[0]), features(s[2], s[1])]
    again = [features(s[0], None), features(s[1], s[0]), features(s[2], s[1])]
    assert first == again
    assert all(list(f) == list(FEATURES) for f in first)
    question, reply, filler = first
    assert question["question"] == 1.0 and question["prev_question"] == 0.0
    assert reply["prev_question"] == 1.0 and reply["same_speaker"] == 0.0
    assert reply["has_number"] == 1.0 and reply["has_time"] == 1.0
    assert reply["log_entities"] > 0 and reply["is_user"] == 0.0
    assert reply["prev_sim"] == pytest.approx(float(s[1].embedding @ s[0].embedding))
    assert filler["filler"] == 1.0 and filler["question"] == 0.0
    assert question["max_sim"] == pytest.approx(1 - question["novelty"])


def test_filler_scores_low_and_is_skipped(embedder: SentenceTransformerEmbedder) -> None:
    batch = Thread(embedder).batch(
        ("user", "I adopted a puppy named Max from the shelter last Saturday."),
        ("user", "haha ok thanks!"),
    )
    fact, filler = decide(batch)
    assert fact.score is not None and filler.score is not None
    assert filler.score < fact.score
    assert (fact.operation, fact.layer) == ("insert", "episodic")
    assert filler.operation == "skip" and filler.reason.startswith("skip: filler")
    assert list(filler.features) == list(FEATURES)


def test_a_first_person_profile_statement_goes_to_core(
    embedder: SentenceTransformerEmbedder,
) -> None:
    (d,) = decide(Thread(embedder).batch(("user", "i'm allergic to peanuts and shellfish")))
    assert (d.operation, d.layer) == ("insert", "core")
    assert d.content == "I'm allergic to peanuts and shellfish."
    # The assistant's words are not the user's profile; a long message says more than a line.
    (d,) = decide(Thread(embedder).batch(("assistant", "I am allergic to nothing at all.")))
    assert d.layer != "core"


def test_preferences_are_semantic(embedder: SentenceTransformerEmbedder) -> None:
    (d,) = decide(Thread(embedder).batch(("user", "I really love spicy Thai food with rice.")))
    assert (d.operation, d.layer) == ("insert", "semantic")


def test_a_reply_merges_into_the_question_and_memories_are_capped(
    embedder: SentenceTransformerEmbedder,
) -> None:
    # People only (two named speakers, role user): one open memory for the thread.
    thread = Thread(embedder)
    batch = thread.batch(
        ("user", "Where did you go on holiday last summer?", "Ana"),
        ("user", "We went to Lisbon for two weeks and loved the food there.", "Ben"),
        ("user", "Did you visit the old castle on the hill?", "Ana"),
        ("user", "Yes, the view of the river from the castle walls was wonderful.", "Ben"),
    )
    ops = decide(batch)
    assert [(d.operation, d.target_message) for d in ops] == [
        ("insert", None),
        ("merge", 0),
        ("merge", 0),
        ("insert", None),  # the first memory holds three messages: the cap
    ]
    assert ops[1].reason.startswith("merge: reply to the question before it (sim ")


def test_an_agents_replies_share_a_memory_of_their_own(
    embedder: SentenceTransformerEmbedder,
) -> None:
    # A person and an agent: the person's turns and the agent's replies are two memories
    # (a question and its long answer are each found on their own).
    batch = Thread(embedder).batch(
        ("user", "I adopted a puppy named Max from the shelter last Saturday."),
        ("assistant", "Congratulations! Here are ten tips for a puppy's first week at home."),
        ("user", "ok thanks, what food should he eat?"),
        ("assistant", "A food made for puppies, three small meals a day, fresh water always."),
    )
    ops = decide(batch)
    assert [(d.operation, d.target_message) for d in ops] == [
        ("insert", None),
        ("insert", None),
        ("merge", 0),  # little new on its own: into the person's memory, not the reply
        ("merge", 1),  # into the agent's replies
    ]
    assert ops[2].reason.startswith("merge: little new on its own (score ")
    assert ops[3].reason == "merge: the agent's replies of the thread share a memory"
    # The agent's memory takes ``agent_max_messages`` replies, then a new one starts.
    cap = int(LearnedPolicy().model.rule("agent_max_messages"))
    turns = [("user", "I adopted a puppy named Max from the shelter last Saturday.")]
    turns += [("assistant", f"Tip {i}: walk Max twice a day.") for i in range(cap + 1)]
    ops = decide(Thread(embedder).batch(*turns))
    assert [d.operation for d in ops[1:]] == ["insert"] + ["merge"] * (cap - 1) + ["insert"]


def test_the_next_request_continues_each_sides_memory(
    embedder: SentenceTransformerEmbedder,
) -> None:
    def mem(text: str) -> Neighbour:
        return Neighbour(uuid.uuid4(), text, "episodic", "message", 1.0)

    person, agent = mem("I adopted a puppy named Max."), mem("Congratulations on Max!")
    sides = {"user": (person, 1), "agent": (agent, 2)}
    batch = Thread(embedder).batch(
        ("assistant", "Puppies sleep up to twenty hours a day."), last=agent, last_messages=2
    )
    batch = Batch(
        situations=[replace(batch.situations[0], side_memories=sides)], user_id=batch.user_id
    )
    (d,) = decide(batch)
    assert (d.operation, d.target_id) == ("merge", agent.id)


def test_a_restated_fact_with_a_new_number_updates_its_memory(
    embedder: SentenceTransformerEmbedder,
) -> None:
    thread = Thread(embedder, ["I run 5 km every morning before work.", "My cat is grey."])
    (d,) = decide(thread.batch(("user", "I run 10 km every morning before work.")))
    assert (d.operation, d.target_id) == ("update", thread.stored[0].id)
    assert d.content == "I run 10 km every morning before work."
    # The same words with the same number: nothing changed, no update.
    (d,) = decide(thread.batch(("user", "I run 5 km every morning before work!")))
    assert d.operation != "update"


def test_a_retraction_deletes_the_memory_it_takes_back(
    embedder: SentenceTransformerEmbedder,
) -> None:
    thread = Thread(embedder, ["I live in Paris near the river.", "I play chess on Sundays."])
    (d,) = decide(thread.batch(("user", "Please forget that I live in Paris.")))
    assert (d.operation, d.target_id) == ("delete", thread.stored[0].id)
    # Forgetting in passing is not a retraction.
    (d,) = decide(thread.batch(("user", "It is easy to get lost in Paris and forget that.")))
    assert d.operation != "delete"


def test_the_packaged_model_loads_and_scores() -> None:
    model = packaged()
    assert model is packaged()  # read once
    raw = json.loads(DEFAULT_MODEL.read_text())
    assert raw["features"] == list(FEATURES) and raw["version"] == model.version == 1
    assert "locomo_dev.json" in model.data and "lme_dev.json" in model.data
    assert model.metrics["auc"] > 0.7 and "cross_dataset" in model.metrics
    assert 0 < model.rule("skip") < model.rule("merge") < 1
    p = model.score(dict.fromkeys(FEATURES, 0.0))
    assert 0.0 < p < 1.0
    assert LearnedPolicy().version == 1 and LearnedPolicy.name == "learned"


def test_the_model_file_round_trips_and_refuses_other_features(tmp_path: Path) -> None:
    model = packaged()
    text = json.dumps(model.to_json())
    again = LearnedModel.from_json(json.loads(text))
    feats = dict(zip(FEATURES, np.linspace(0.0, 2.0, len(FEATURES)), strict=True))
    assert again.score(feats) == model.score(feats)
    assert again.to_json() == model.to_json()
    path = tmp_path / "m.json"
    path.write_text(text)
    assert LearnedModel.load(path).thresholds == model.thresholds
    other = {**model.to_json(), "features": [*FEATURES, "extra"]}
    with pytest.raises(ValueError, match="features"):
        LearnedModel.from_json(other)
    with pytest.raises(ValueError, match="thresholds"):
        LearnedModel.from_json({**model.to_json(), "thresholds": {"exec": 1.0}})


def _synthetic(flip: bool) -> list[tuple[dict[str, float], int]]:
    """Long, novel messages are the evidence; short fillers are not (or the reverse)."""
    rng = random.Random(3)
    out = []
    for i in range(60):
        evidence = i % 2 == 0
        f = dict.fromkeys(FEATURES, 0.0)
        f["filler"] = 0.0 if evidence else 1.0
        f["log_words"] = rng.uniform(2.5, 4.0) if evidence else rng.uniform(0.5, 1.5)
        f["novelty"] = rng.uniform(0.3, 0.8)
        out.append((f, int(evidence != flip)))
    return out


def test_training_changes_decisions(embedder: SentenceTransformerEmbedder) -> None:
    model = train(_synthetic(False), version=7, data="synthetic")
    flipped = train(_synthetic(True), version=8, data="synthetic, flipped")
    assert model.version == 7 and model.data == "synthetic"
    assert model.metrics["auc"] == 1.0 and model.metrics["examples"] == 60
    assert {"accuracy", "kept", "positives_kept", "skipped"} <= set(model.metrics)
    batch = Thread(embedder).batch(
        ("user", "I adopted a puppy named Max from the shelter last Saturday afternoon."),
        ("user", "haha ok thanks!"),
    )
    ours = [d.operation for d in decide(batch, LearnedPolicy(model))]
    theirs = [d.operation for d in decide(batch, LearnedPolicy(flipped))]
    assert ours == ["insert", "skip"] and theirs != ours
    # The model file is data: a round trip keeps what training chose.
    assert LearnedModel.from_json(model.to_json()).thresholds == model.thresholds


def test_training_refuses_too_little_or_one_class_data() -> None:
    data = _synthetic(False)
    with pytest.raises(ValueError, match="at least 20"):
        train(data[:10], version=2, data="few")
    with pytest.raises(ValueError, match="0 negative"):
        train([(f, 1) for f, _ in data], version=2, data="one class")


def test_auc_counts_ties_half() -> None:
    assert auc([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == 1.0
    assert auc([0.5, 0.5], [0, 1]) == 0.5
    assert auc([0.9, 0.1, 0.5], [0, 1, 1]) == 0.0  # both positives below the negative
