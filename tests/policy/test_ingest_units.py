"""The ingest engine's pure parts: the core block's folding and cap, pooled embeddings."""

from __future__ import annotations

import numpy as np

from memsvc.policy.decide import Message
from memsvc.policy.ingest import _Group, _pooled, fold_core, rewrite_core


def test_fold_core_adds_replaces_and_caps() -> None:
    block = fold_core("", "I live in Lisbon with my partner.", 80)
    assert block == "I live in Lisbon with my partner."
    assert fold_core(block, "I live in  Lisbon with my partner.", 80) is None  # nothing new
    block = fold_core(block, "Allergic to peanuts.", 80)
    assert block == "I live in Lisbon with my partner.\nAllergic to peanuts."
    # The same statement with something changed replaces the old line.
    moved = fold_core(block, "I live in Porto with my partner.", 80)
    assert moved == "Allergic to peanuts.\nI live in Porto with my partner."
    # Past the cap the oldest lines go first.
    assert moved is not None
    capped = fold_core(moved, "Runs ten kilometres every morning before work.", 80)
    assert (
        capped == "I live in Porto with my partner.\nRuns ten kilometres every morning before work."
    )


def test_rewrite_core_keeps_lines_and_cap() -> None:
    assert rewrite_core("a", "Vegetarian.\n\n  Lives   in Porto. ", 100) == (
        "Vegetarian.\nLives in Porto."
    )
    assert rewrite_core("Vegetarian.", "Vegetarian.", 100) is None
    assert rewrite_core("", "one two\nthree four\nfive six", 12) == "five six"


def _msgs(*texts: str) -> list[Message]:
    return [Message(index=i, role="user", content=t) for i, t in enumerate(texts)]


def test_pooled_embeddings_for_every_verbatim_group() -> None:
    rng = np.random.default_rng(0)
    vecs = [v / np.linalg.norm(v) for v in rng.normal(size=(3, 8)).astype(np.float32)]
    short = _msgs("a question?", "an answer.", "x")
    assert _pooled(_Group([0], ["a question?"], "episodic"), short, vecs) is vecs[0]
    # Several messages, short or long: the normalised mean (their own vectors are passages).
    pooled = _pooled(_Group([0, 1], ["a question?", "an answer."], "episodic"), short, vecs)
    assert pooled is not None and abs(float(np.linalg.norm(pooled)) - 1.0) < 1e-5
    expect = (vecs[0] + vecs[1]) / np.linalg.norm(vecs[0] + vecs[1])
    assert np.allclose(pooled, expect, atol=1e-6)
    # A text the policy rewrote is embedded as written.
    rewritten = _Group([0, 1], ["Summary."], "episodic", rewritten=True)
    assert _pooled(rewritten, short, vecs) is None
