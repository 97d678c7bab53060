"""Rerankers: a sentence-transformers cross-encoder (fp16 on CUDA) and a token-overlap fake."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from memsvc.errors import ServiceUnavailable
from memsvc.runtime.base import Scores
from memsvc.runtime.embedder import tokens
from memsvc.runtime.loading import ensure_offline_env, resolve_device, resolve_model_path

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class CrossEncoderReranker:
    """A cross-encoder from a local path or the offline hub cache; one score per pair."""

    def __init__(self, name_or_path: str, *, device: str = "auto", batch_size: int = 32) -> None:
        ensure_offline_env()
        from sentence_transformers import CrossEncoder

        self.model_name = name_or_path
        self.device = resolve_device(device)
        self.batch_size = batch_size
        model = CrossEncoder(resolve_model_path(name_or_path), device=self.device)
        if getattr(model, "num_labels", 1) != 1:
            raise ServiceUnavailable(
                f"reranker {name_or_path!r} has {model.num_labels} labels; a reranker needs 1"
            )
        if self.device.startswith("cuda"):
            model.half()
        model.eval()
        self._model: CrossEncoder = model
        # HF fast tokenizers fail ("Already borrowed") when one instance is used by two threads.
        self._lock = threading.Lock()

    def score(self, query: str, docs: Sequence[str]) -> Scores:
        """One float32 score per document for one query."""
        return self.score_pairs([(query, doc) for doc in docs])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> Scores:
        """One float32 score per (query, document) pair; lets batches mix queries."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            raw = self._model.predict(
                list(pairs),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(raw, dtype=np.float32).reshape(len(pairs))


class FakeReranker:
    """Deterministic reranker: the share of query tokens that appear in the document."""

    def __init__(self, *, model_name: str = "fake-reranker") -> None:
        self.model_name = model_name
        self.device = "cpu"

    def score(self, query: str, docs: Sequence[str]) -> Scores:
        """One float32 score per document for one query."""
        return self.score_pairs([(query, doc) for doc in docs])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> Scores:
        """Overlap |q & d| / |q| per pair, with a small bonus for shorter documents on ties."""
        out = np.zeros(len(pairs), dtype=np.float32)
        for i, (query, doc) in enumerate(pairs):
            q, d = set(tokens(query)), set(tokens(doc))
            if q:
                out[i] = len(q & d) / len(q) + 1e-3 / (1 + len(d))
        return out
