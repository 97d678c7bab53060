"""Named retrieval strategies: data, not code (after graphiti's search recipes).

- ``fast``: vector kNN only (exact below the exact-search threshold, HNSW above it).
- ``hybrid``: vector + BM25 full-text + the time channel for queries that name dates or
  periods + the graph channel once the cube has links, fused by weighted RRF (``rrf``'s
  weights) and the head reordered by the learned ranker (``memsvc.retrieval.ranker``: the
  fused score, the speaker the query names, and whether it is the agent's own turn and the
  query recalls what the agent said). Turn recall@10, written one turn a request
  (bench/locomo.py, bench/lme.py), fused order -> ranker cross-validated: locomo_dev 0.786
  -> 0.789 (by conversation), lme_dev 0.790 -> 0.823; unchanged (0.748) on LoCoMo written
  through ``/ingest`` by the ``learned`` policy. The model's file holds its metrics.
- ``rrf``: the same channels fused by hand-set weighted RRF only (the default before the
  learned ranker): vector + BM25 weighted 1:2 (on conversational memory exact words —
  names, objects, places — beat paraphrase), time 1, graph 0.25 (on LoCoMo dev it moved
  recall@10 by +0.008, within noise; weight 1.0 cost -0.019), with a small ``k`` so the
  channels' top ranks dominate. Long memories' passage vectors stay merged into the vector
  channel (a memory by its best vector). As a channel of their own
  (``RetrievalConfig.passages``) they did worse: bench/fusion.py over ``--dump-passages``
  dumps, turn recall@10 on lme_dev, merged 0.790, own vectors alone 0.773, own + passages
  at weight 0.25 / 0.5 / 1.0: 0.773 / 0.729 / 0.651 (locomo_dev has no long turns: 0.786
  in every form). Alone, though, passages cost the vector channel on lme_dev (0.687 own
  vectors, 0.622 merged): ``fast`` pays that for finding a fact deep in a long message.
- ``learned``: the same as ``hybrid`` (its name before the ranker became the default).
- ``deep``: ``hybrid`` with deeper candidates and a cross-encoder over the head; with no
  reranker configured it returns the ``hybrid`` order and says so in ``notes``.
"""

from __future__ import annotations

from typing import Any, Literal

from memsvc.errors import BadRequest
from memsvc.schemas import ChannelConfig, RetrievalConfig


def _channels(depth: int, *, ranker: Literal["rrf", "learned"], **extra: Any) -> RetrievalConfig:
    """The four channels with ``rrf``'s weights, ``depth`` candidates from the vector and
    full-text channels (half as many from time and graph)."""
    return RetrievalConfig(
        vector=ChannelConfig(weight=1.0, depth=depth),
        fulltext=ChannelConfig(weight=2.0, depth=depth),
        time=ChannelConfig(weight=1.0, depth=depth // 2),
        graph=ChannelConfig(weight=0.25, depth=depth // 2),
        rrf_k=20,
        ranker=ranker,
        **extra,
    )


PRESETS: dict[str, RetrievalConfig] = {
    "fast": RetrievalConfig(vector=ChannelConfig(weight=1.0, depth=50), fulltext=None),
    "hybrid": _channels(100, ranker="learned"),
    "rrf": _channels(100, ranker="rrf"),
    "learned": _channels(100, ranker="learned"),
    "deep": _channels(200, ranker="learned", rerank=True, rerank_depth=50),
}
DEFAULT_PRESET = "hybrid"


def resolve(
    preset: str | None, config: RetrievalConfig | None
) -> tuple[str | None, RetrievalConfig]:
    """The strategy a request asks for: an explicit config wins over a preset name."""
    if config is not None:
        return None, config
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise BadRequest(
            f"unknown preset {name!r}", code="unknown_preset", detail={"presets": sorted(PRESETS)}
        )
    return name, PRESETS[name]
