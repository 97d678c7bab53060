"""Small protocols every model runtime implements, plus shared array helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
"""Embeddings: shape (n, dim), float32, each row L2-normalised."""

Scores = npt.NDArray[np.float32]
"""Relevance scores: shape (n,), float32, higher is more relevant."""


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    model_name: str
    dim: int
    device: str

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed texts into an (n, dim) float32 array of unit rows."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """An embedder that can tell how many tokens of each text its model reads."""

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """One count per text, at most the model's window."""
        ...


@runtime_checkable
class QueryEmbedder(Protocol):
    """An embedder with a path of its own for search queries (``embed_queries``)."""

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Query vectors, comparable with ``embed``'s, never stored."""
        ...


class Reranker(Protocol):
    """Scores (query, document) pairs; higher means more relevant."""

    model_name: str
    device: str

    def score(self, query: str, docs: Sequence[str]) -> Scores:
        """One float32 score per document for one query."""
        ...

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> Scores:
        """One float32 score per (query, document) pair; lets batches mix queries."""
        ...


def l2_normalize(vectors: npt.NDArray[np.floating]) -> Vectors:
    """Rows scaled to unit length in float32; all-zero rows stay zero."""
    out = np.asarray(vectors, dtype=np.float32)
    if out.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {out.shape}")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    return np.ascontiguousarray(out / norms, dtype=np.float32)
