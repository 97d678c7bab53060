"""Local model runtime: embedder and optional reranker behind micro-batchers.

``build_runtime(settings.models)`` loads the models (seconds: call it off the event loop);
``ModelRuntime`` is then the one entry point for inference in the service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict, TypeVar

from memsvc.config import ModelSettings
from memsvc.errors import ServiceUnavailable
from memsvc.runtime.base import (
    Embedder,
    QueryEmbedder,
    Reranker,
    Scores,
    TokenCounter,
    Vectors,
    l2_normalize,
)
from memsvc.runtime.batching import MicroBatcher, by_length
from memsvc.runtime.embedder import (
    DEFAULT_BACKEND,
    Backend,
    FakeEmbedder,
    SentenceTransformerEmbedder,
)
from memsvc.runtime.reranker import CrossEncoderReranker, FakeReranker
from memsvc.runtime.selftest import (
    SelfTestReport,
    latencies_ms,
    percentile,
    synthetic_sentences,
    throughput,
)

__all__ = [
    "CrossEncoderReranker",
    "Embedder",
    "FakeEmbedder",
    "FakeReranker",
    "MicroBatcher",
    "ModelRuntime",
    "Reranker",
    "RuntimeInfo",
    "Scores",
    "SelfTestReport",
    "SentenceTransformerEmbedder",
    "Vectors",
    "build_runtime",
    "by_length",
    "l2_normalize",
]

M = TypeVar("M")


class RuntimeInfo(TypedDict):
    """What is loaded and where it runs."""

    device: str
    backend: str
    # What embeds search queries: the backend, or "onnx-int8" (``models.query_int8``).
    query_backend: str
    embedder: str
    embedding_dim: int
    reranker: str | None
    reranker_device: str | None
    batch_size: int
    batch_wait_ms: float


class ModelRuntime:
    """Embedder plus optional reranker; async calls share model batches across requests."""

    def __init__(
        self,
        embedder: Embedder,
        reranker: Reranker | None = None,
        *,
        batch_size: int = 64,
        batch_wait_ms: float = 0.0,
    ) -> None:
        self.embedder = embedder
        self.reranker = reranker
        self.batch_size = batch_size
        self.batch_wait_ms = batch_wait_ms
        self._embed_batcher: MicroBatcher[str] = MicroBatcher(
            embedder.embed, batch_size=batch_size, wait_ms=batch_wait_ms, name="memsvc-embed"
        )
        # Search queries go apart when the embedder has a path of its own for them (the int8
        # graph): they never wait behind a write's queued batches, nor it behind them.
        self._query_batcher = self._embed_batcher
        if isinstance(embedder, QueryEmbedder) and getattr(embedder, "query_backend", None) != (
            getattr(embedder, "backend", None)
        ):
            self._query_batcher = MicroBatcher(
                embedder.embed_queries,
                batch_size=batch_size,
                wait_ms=batch_wait_ms,
                name="memsvc-query",
            )
        self._rerank_batcher: MicroBatcher[tuple[str, str]] | None = None
        if reranker is not None:
            self._rerank_batcher = MicroBatcher(
                reranker.score_pairs,
                batch_size=batch_size,
                wait_ms=batch_wait_ms,
                name="memsvc-rerank",
            )

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """(n, dim) unit vectors for texts, batched with concurrent requests."""
        return await self._embed_batcher.run(texts)

    async def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """(n, dim) unit vectors for search queries, to compare with stored vectors (never to
        store): the embedder's query path when it has one (``models.query_int8``)."""
        return await self._query_batcher.run(texts)

    async def embed_query(self, text: str) -> Vectors:
        """The (dim,) unit vector of one search query (``embed_queries``)."""
        rows = await self._query_batcher.run([text])
        return rows.reshape(rows.shape[1])

    async def lengths(self, texts: Sequence[str]) -> list[int]:
        """What each text costs in a model batch (``by_length``): its tokens when the embedder
        counts them (in a worker thread: ~0.3 ms a long text), else its characters."""
        if not isinstance(self.embedder, TokenCounter) or not texts:
            return [len(text) for text in texts]
        return await asyncio.to_thread(self.embedder.token_counts, list(texts))

    async def rerank(self, query: str, docs: Sequence[str]) -> Scores | None:
        """One score per document, or None when no reranker is configured."""
        if self._rerank_batcher is None:
            return None
        return await self._rerank_batcher.run([(query, doc) for doc in docs])

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Embed in this thread, bypassing the batch queue (CLI, bench, scripts)."""
        return self._embed_batcher.run_sync(texts)

    def rerank_sync(self, query: str, docs: Sequence[str]) -> Scores | None:
        """Rerank in this thread, bypassing the batch queue; None without a reranker."""
        if self._rerank_batcher is None:
            return None
        return self._rerank_batcher.run_sync([(query, doc) for doc in docs])

    def info(self) -> RuntimeInfo:
        """Device, backend, model names and dimension."""
        return RuntimeInfo(
            device=self.embedder.device,
            backend=str(getattr(self.embedder, "backend", "custom")),
            query_backend=str(
                getattr(self.embedder, "query_backend", getattr(self.embedder, "backend", "custom"))
            ),
            embedder=self.embedder.model_name,
            embedding_dim=self.embedder.dim,
            reranker=self.reranker.model_name if self.reranker else None,
            reranker_device=self.reranker.device if self.reranker else None,
            batch_size=self.batch_size,
            batch_wait_ms=self.batch_wait_ms,
        )

    def self_test(self, n: int = 256) -> SelfTestReport:
        """Time batched embedding, single-query latency and reranking on synthetic text."""
        texts = synthetic_sentences(max(n, 1))
        rate = throughput(self.embed_sync, texts, self.batch_size)
        lat = latencies_ms(self.embed_sync, texts[: min(len(texts), 64)])
        pairs_per_s: float | None = None
        if self.reranker is not None:
            query, docs = texts[0], texts[1:] or texts
            self.rerank_sync(query, docs[: self.batch_size])
            start = time.perf_counter()
            self.rerank_sync(query, docs)
            pairs_per_s = len(docs) / max(time.perf_counter() - start, 1e-9)
        return SelfTestReport(
            texts=len(texts),
            batch_size=self.batch_size,
            embed_texts_per_s=round(rate, 1),
            query_latency_ms_p50=round(percentile(lat, 50), 2),
            query_latency_ms_p95=round(percentile(lat, 95), 2),
            rerank_pairs_per_s=None if pairs_per_s is None else round(pairs_per_s, 1),
        )

    def close(self) -> None:
        """Stop the batch workers; pending requests fail with ServiceUnavailable."""
        self._embed_batcher.close()
        if self._query_batcher is not self._embed_batcher:
            self._query_batcher.close()
        if self._rerank_batcher is not None:
            self._rerank_batcher.close()


def build_runtime(
    settings: ModelSettings,
    *,
    fake: bool = False,
    backend: Backend | None = None,
    cache_dir: Path | None = None,
) -> ModelRuntime:
    """Load the configured models (or fakes) and check the embedding dimension."""
    if fake:
        embedder: Embedder = FakeEmbedder(dim=settings.embedding_dim)
        reranker: Reranker | None = FakeReranker() if settings.reranker else None
    else:
        chosen: Backend = backend or settings.backend or DEFAULT_BACKEND
        embedder = _load(
            "embedder",
            settings.embedder,
            lambda: SentenceTransformerEmbedder(
                settings.embedder,
                device=settings.device,
                batch_size=settings.batch_size,
                backend=chosen,
                cache_dir=cache_dir or settings.cache_dir,
                query_int8=settings.query_int8,
            ),
        )
        reranker = None
        if settings.reranker:
            name = settings.reranker
            reranker = _load(
                "reranker",
                name,
                lambda: CrossEncoderReranker(
                    name, device=settings.device, batch_size=settings.batch_size
                ),
            )
    if embedder.dim != settings.embedding_dim:
        raise ServiceUnavailable(
            f"embedder {embedder.model_name!r} gives {embedder.dim}-d vectors but "
            f"models.embedding_dim is {settings.embedding_dim}; the database schema is built "
            "for the configured dimension, so change one to match the other",
            detail={"model_dim": embedder.dim, "embedding_dim": settings.embedding_dim},
        )
    return ModelRuntime(
        embedder,
        reranker,
        batch_size=settings.batch_size,
        batch_wait_ms=settings.batch_wait_ms,
    )


def _load(kind: str, name: str, factory: Callable[[], M]) -> M:
    """Run a model loader, turning a missing or broken model into ServiceUnavailable."""
    try:
        return factory()
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise ServiceUnavailable(
            f"could not load {kind} {name!r}: {exc}", detail={"kind": kind, "model": name}
        ) from exc
