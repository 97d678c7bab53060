"""Embedders: sentence-transformers (torch, fp16 on CUDA, optional ONNX on CPU) and a fake."""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from memsvc.config import PACKAGED_EMBEDDER
from memsvc.errors import ServiceUnavailable
from memsvc.runtime import onnx_backend
from memsvc.runtime.base import Vectors, l2_normalize
from memsvc.runtime.batching import padded_batches
from memsvc.runtime.loading import ensure_offline_env, resolve_device, resolve_model_path

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx"]
BACKENDS: tuple[Backend, ...] = ("auto", "torch", "onnx")
DEFAULT_BACKEND: Backend = "torch"


class SentenceTransformerEmbedder:
    """A sentence-transformers model from packaged weights, a local path or the offline hub cache.

    ``backend``: ``torch`` (default); ``onnx`` exports the model to ONNX Runtime on CPU and
    falls back to torch with a warning on any failure; ``auto`` does the same only when the
    ``onnx`` and ``onnxruntime`` packages are installed, silently otherwise. On CUDA the
    model always runs in torch fp16.
    """

    def __init__(
        self,
        name_or_path: str = PACKAGED_EMBEDDER,
        *,
        device: str = "auto",
        batch_size: int = 64,
        backend: Backend = DEFAULT_BACKEND,
        cache_dir: Path | None = None,
        query_int8: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ServiceUnavailable(f"unknown embedder backend {backend!r}; use {BACKENDS}")
        ensure_offline_env()
        from sentence_transformers import SentenceTransformer

        self.model_name = name_or_path
        self.device = resolve_device(device)
        self.batch_size = batch_size
        path = resolve_model_path(name_or_path)
        model = SentenceTransformer(path, device=self.device)
        if self.device.startswith("cuda"):
            model.half()
        model.eval()
        # sentence-transformers 6 renamed the getter; 5 only has the old name.
        get_dim = getattr(model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
        if dim is None:
            raise ServiceUnavailable(f"embedder {name_or_path!r} does not declare its dimension")
        self.dim = int(dim)
        self._model: SentenceTransformer = model
        # HF fast tokenizers fail ("Already borrowed") when one instance is used by two threads.
        self._lock = threading.Lock()
        # token_counts has a tokenizer of its own, so it never waits for a model call.
        self._counter = copy.deepcopy(model.tokenizer)
        self._counter_lock = threading.Lock()
        self._onnx: onnx_backend.OnnxSentenceEncoder | None = None
        # Queries (``embed_queries``) through an int8 copy of the ONNX graph, when asked for.
        self._onnx_queries: onnx_backend.QueryEncoder | None = None
        self.backend = "torch"
        if self._wants_onnx(backend):
            self._onnx = self._load_onnx(path, cache_dir or onnx_backend.default_cache_dir())
            if self._onnx is not None:
                self.backend = "onnx"
                if query_int8:
                    self._onnx_queries = onnx_backend.load_int8(self._model, self._onnx)
        self.query_backend = "onnx-int8" if self._onnx_queries is not None else self.backend

    def _wants_onnx(self, backend: Backend) -> bool:
        if backend == "torch":
            return False
        if self.device != "cpu":
            logger.info(
                "embedder backend %s ignored on %s: torch fp16 is used", backend, self.device
            )
            return False
        if backend == "auto":
            return onnx_backend.dependencies_available()
        return True

    def _load_onnx(self, path: str, cache_dir: Path) -> onnx_backend.OnnxSentenceEncoder | None:
        try:
            encoder = onnx_backend.load(self._model, path, cache_dir, label=self.model_name)
        # Named boundary: the ONNX path is an optional accelerator, torch is always there.
        except Exception:
            logger.warning(
                "ONNX backend unavailable for %s; using torch", self.model_name, exc_info=True
            )
            return None
        logger.info("embedder %s runs on ONNX Runtime from %s", self.model_name, encoder.path)
        return encoder

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed texts into an (n, dim) float32 array of unit rows."""
        items = list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = self.batches(items)
        with self._lock:
            if self._onnx is not None:
                return self._onnx.encode(items, batches)
            out = np.empty((len(items), self.dim), dtype=np.float32)
            for idx in batches:
                raw = self._model.encode(
                    [items[i] for i in idx],
                    batch_size=len(idx),
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                out[idx] = raw
        # fp16 on CUDA comes back as float16; renormalising in float32 keeps norms at 1.
        return l2_normalize(out)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Embed search queries: through the int8 graph when it is loaded (``query_int8``),
        else as ``embed``. Its vectors are compared with stored ones, never stored.

        The int8 graph runs one query a call: it quantises activations over the whole batch
        (padding included), so a query batched with others would get a vector that depends on
        its batch-mates, and the same search could rank differently under load."""
        if self._onnx_queries is None or not texts:
            return self.embed(texts)
        # No lock: the query graph has its own tokenizer and session (``QueryEncoder``), so a
        # query never waits for a write's batch.
        return np.concatenate([self._onnx_queries.encode_one(text) for text in texts])

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        """The model calls that embed ``texts`` (``batching.padded_batches`` over their token
        counts). On CPU a long memory's windows and its short sentences go apart; on CUDA,
        where a call costs far more than padding, texts go as few batches as fit."""
        if len(texts) == 1:
            return [[0]]
        lengths = self.token_counts(texts)
        if self.device == "cpu":
            return padded_batches(lengths, max_items=self.batch_size)
        return padded_batches(
            lengths, max_items=self.batch_size, max_tokens=self.batch_size * 512, call_cost=1e6
        )

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Word pieces the model reads of each text (its window cuts the rest): what a text
        costs in a model batch, where every text is padded to the longest."""
        items = list(texts)
        if not items:
            return []
        with self._counter_lock:
            encoded = self._counter(
                items,
                truncation=True,
                max_length=self._model.max_seq_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
        return [len(ids) for ids in encoded["input_ids"]]


_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens, as the fakes see text."""
    return _TOKEN.findall(text.lower())


@lru_cache(maxsize=65_536)
def _token_vector(token: str, dim: int) -> Vectors:
    seed = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    vector.setflags(write=False)
    return vector


class FakeEmbedder:
    """Deterministic bag-of-words embedder: texts sharing words get close vectors."""

    backend = "fake"

    def __init__(self, dim: int = 384, *, model_name: str = "fake-embedder") -> None:
        self.model_name = model_name
        self.dim = dim
        self.device = "cpu"

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Sum of per-token random vectors (seeded by a hash of the token), normalised."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            # An empty text still gets a fixed unit vector, never a zero row.
            for token in tokens(text) or [""]:
                out[row] += _token_vector(token, self.dim)
        return l2_normalize(out)
