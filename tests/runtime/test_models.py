"""Real models, offline: the packaged MiniLM embedder, a cross-encoder, and the ONNX path."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from memsvc.config import ModelSettings
from memsvc.errors import ServiceUnavailable
from memsvc.runtime import (
    CrossEncoderReranker,
    FakeEmbedder,
    ModelRuntime,
    SentenceTransformerEmbedder,
    build_runtime,
    onnx_backend,
)
from memsvc.runtime.selftest import synthetic_sentences

pytestmark = pytest.mark.slow

HAS_ONNX = importlib.util.find_spec("onnx") is not None and (
    importlib.util.find_spec("onnxruntime") is not None
)
TEXTS = [*synthetic_sentences(40, seed=7), "", "ok", "A much longer sentence " * 40]


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(device="cpu", backend="torch")


@pytest.fixture(scope="module")
def reranker_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A cross-encoder on the packaged MiniLM backbone (random head), saved to disk."""
    from sentence_transformers import CrossEncoder

    from memsvc.runtime.loading import resolve_model_path

    model = CrossEncoder(resolve_model_path("packaged:all-MiniLM-L6-v2"), num_labels=1)
    path = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def reranker(reranker_path: str) -> CrossEncoderReranker:
    return CrossEncoderReranker(reranker_path, device="cpu", batch_size=4)


@pytest.fixture()
def runtime(
    embedder: SentenceTransformerEmbedder, reranker: CrossEncoderReranker
) -> Iterator[ModelRuntime]:
    rt = ModelRuntime(embedder, reranker, batch_size=16, batch_wait_ms=20.0)
    yield rt
    rt.close()


def test_packaged_minilm_loads_offline(embedder: SentenceTransformerEmbedder) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert (embedder.dim, embedder.device, embedder.backend) == (384, "cpu", "torch")
    query, para, other = embedder.embed(
        [
            "Caroline went to an LGBTQ support group yesterday.",
            "Yesterday Caroline attended a support group for LGBTQ people.",
            "The stock market closed lower on Friday.",
        ]
    )
    assert query.shape == (384,)
    assert query.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm([query, para, other], axis=1), 1.0, atol=1e-5)
    assert float(query @ para) > float(query @ other) + 0.3


def test_batched_equals_one_by_one(embedder: SentenceTransformerEmbedder) -> None:
    batched = embedder.embed(TEXTS)
    single = np.concatenate([embedder.embed([t]) for t in TEXTS])
    assert batched.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_a_long_texts_windows_and_sentences_go_in_separate_calls(
    embedder: SentenceTransformerEmbedder,
) -> None:
    long = "I keep a detailed journal of every trip we take as a family. " * 40
    sentences = [f"My sister {name} moved to a new city last spring." for name in "ABCDEFGH"]
    texts = [long, *sentences, long + " Then more."]
    batches = embedder.batches(texts)
    # The two 256-token texts share a call, the short sentences another.
    assert sorted(map(sorted, batches)) == [[0, 9], list(range(1, 9))]
    single = np.concatenate([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(embedder.embed(texts), single, atol=1e-5)
    assert embedder.batches(["one"]) == [[0]]


def test_lengths_are_the_tokens_the_model_reads(
    runtime: ModelRuntime, embedder: SentenceTransformerEmbedder
) -> None:
    texts = ["", "ok", "Melanie painted a sunrise.", "A much longer sentence " * 200]
    # [CLS] and [SEP] count; the model's 256-token window cuts the long one.
    assert embedder.token_counts(texts) == [2, 3, 7, 256]
    assert asyncio.run(runtime.lengths(texts)) == [2, 3, 7, 256]
    fake = ModelRuntime(FakeEmbedder(dim=8))
    try:  # an embedder that cannot count tokens: characters
        assert asyncio.run(fake.lengths(texts)) == [len(t) for t in texts]
    finally:
        fake.close()


def test_micro_batcher_with_real_model(
    runtime: ModelRuntime, embedder: SentenceTransformerEmbedder
) -> None:
    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(runtime.embed([t]) for t in TEXTS[:20]))

    results = asyncio.run(main())
    expected = embedder.embed(TEXTS[:20])
    for i, rows in enumerate(results):
        assert rows.shape == (1, 384)
        np.testing.assert_allclose(rows[0], expected[i], atol=1e-5)
    assert runtime._embed_batcher.calls < 20


def test_cross_encoder_scores(reranker: CrossEncoderReranker) -> None:
    docs = TEXTS[:10]
    batched = reranker.score("Who went to the support group?", docs)
    single = np.concatenate([reranker.score("Who went to the support group?", [d]) for d in docs])
    assert batched.shape == (10,)
    assert batched.dtype == np.float32
    assert np.isfinite(batched).all()
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert reranker.score("q", []).shape == (0,)


def test_runtime_rerank_mixes_queries(
    runtime: ModelRuntime, reranker: CrossEncoderReranker
) -> None:
    queries = ["support group", "pottery class", "charity race"]

    async def main() -> list[np.ndarray | None]:
        return await asyncio.gather(*(runtime.rerank(q, TEXTS[:6]) for q in queries))

    for query, scores in zip(queries, asyncio.run(main()), strict=True):
        assert scores is not None
        np.testing.assert_allclose(scores, reranker.score(query, TEXTS[:6]), atol=1e-5)
    report = runtime.self_test(n=32)
    assert report["embed_texts_per_s"] > 0
    assert report["rerank_pairs_per_s"] is not None


def test_build_runtime_checks_dimension() -> None:
    with pytest.raises(ServiceUnavailable, match=r"384-d vectors but models\.embedding_dim is 768"):
        build_runtime(ModelSettings(device="cpu", embedding_dim=768))


def test_build_runtime_reports_missing_models(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="could not load embedder"):
        build_runtime(ModelSettings(embedder=str(tmp_path / "nope")))
    with pytest.raises(ServiceUnavailable, match="unknown packaged model"):
        build_runtime(ModelSettings(embedder="packaged:bert-huge"))
    with pytest.raises(ServiceUnavailable, match="could not load reranker"):
        build_runtime(ModelSettings(device="cpu", reranker=str(tmp_path / "nope")))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_cuda_without_gpu_is_refused() -> None:
    with pytest.raises(ServiceUnavailable, match="CUDA is not available"):
        SentenceTransformerEmbedder(device="cuda")


def test_onnx_failure_falls_back_to_torch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter missing")

    monkeypatch.setattr(onnx_backend, "load", broken)
    emb = SentenceTransformerEmbedder(device="cpu", backend="onnx", cache_dir=tmp_path)
    assert emb.backend == "torch"
    assert "ONNX backend unavailable" in caplog.text
    assert emb.embed(["hi"]).shape == (1, 384)


@pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx and onnxruntime packages")
def test_onnx_backend_matches_torch_and_caches(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    fast = SentenceTransformerEmbedder(device="cpu", backend="onnx", cache_dir=tmp_path)
    assert fast.backend == "onnx"
    (cached,) = tmp_path.glob("*.onnx")
    got, want = fast.embed(TEXTS), embedder.embed(TEXTS)
    assert got.shape == want.shape
    assert float((got * want).sum(axis=1).min()) >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)

    stamp = cached.stat().st_mtime_ns
    again = SentenceTransformerEmbedder(device="cpu", backend="auto", cache_dir=tmp_path)
    assert again.backend == "onnx"
    assert cached.stat().st_mtime_ns == stamp  # reused, not re-exported

    cached.write_bytes(b"not an onnx graph")
    healed = SentenceTransformerEmbedder(device="cpu", backend="onnx", cache_dir=tmp_path)
    assert healed.backend == "onnx"  # a damaged cache file is exported again
    assert float((healed.embed(TEXTS) * want).sum(axis=1).min()) >= 0.9999


def test_direct_embed_is_thread_safe(embedder: SentenceTransformerEmbedder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    chunks = [TEXTS[i : i + 5] for i in range(0, 20, 5)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(embedder.embed, chunks))
    for chunk, rows in zip(chunks, results, strict=True):
        np.testing.assert_allclose(rows, embedder.embed(chunk), atol=1e-5)


def test_old_onnx_exports_of_a_model_are_pruned(tmp_path: Path) -> None:
    slug, t0 = "packaged-all-MiniLM-L6-v2", 1_700_000_000

    def file(name: str, age_s: int) -> Path:
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (t0 - age_s, t0 - age_s))
        return path

    in_use = file(f"{slug}-{'0' * 20}.onnx", 10_000)  # the oldest, but this install's
    in_use_q8 = file(f"{slug}-{'0' * 20}.q8.onnx", 10_000)  # its int8 query graph
    old_q8 = file(f"{slug}-{5:020x}.q8.onnx", 590)  # goes with its own graph
    olds = [file(f"{slug}-{i:020x}.onnx", 100 * (i + 1)) for i in range(1, 6)]
    tmp_left = file(f"{slug}-{'a' * 20}k3j9.tmp", 7_200)
    other_model = file(f"{slug}-large-{'b' * 20}.onnx", 50_000)
    unrelated = file("notes.txt", 50_000)
    removed = onnx_backend.prune(tmp_path, slug, in_use)
    assert sorted(removed) == sorted([*olds[2:], old_q8, tmp_left])
    assert sorted(tmp_path.iterdir()) == sorted(
        [in_use, in_use_q8, *olds[:2], other_model, unrelated]
    )
    assert onnx_backend.prune(tmp_path, slug, in_use) == []  # nothing more to remove


@pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx and onnxruntime packages")
def test_int8_query_graph_ranks_like_the_float_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    emb = SentenceTransformerEmbedder(
        device="cpu", backend="onnx", cache_dir=tmp_path, query_int8=True
    )
    assert (emb.backend, emb.query_backend) == ("onnx", "onnx-int8")
    assert len(list(tmp_path.glob("*.q8.onnx"))) == 1
    docs = emb.embed(TEXTS[:40])
    queries = TEXTS[40:] + synthetic_sentences(20, seed=11)
    exact, quick = emb.embed(queries), emb.embed_queries(queries)
    cosine = (exact * quick).sum(axis=1)
    # Close ("" and "ok" drift most), but its own graph.
    assert cosine.min() >= 0.95 and np.median(cosine) >= 0.985 and cosine.max() < 1 - 1e-6
    # The same nearest document wherever the float scores tell the first from the second.
    sims = np.sort(docs @ exact.T, axis=0)
    clear = sims[-1] - sims[-2] > 0.02
    same = (docs @ exact.T).argmax(axis=0) == (docs @ quick.T).argmax(axis=0)
    assert clear.sum() >= len(queries) // 2 and same[clear].all()

    # The query path tokenises on its own copy of the tokenizer, as the model does (long
    # texts truncated alike), and gives the graph's own vectors.
    encoder = emb._onnx_queries
    assert encoder is not None
    for text in [*queries[:5], " ".join(["memory"] * 600), "Gästebuch: naïve café 東京", ""]:
        want = onnx_backend._tokenize(emb._model, [text])
        got = encoder.features(text)
        assert set(got) <= set(want)
        for name, ids in got.items():
            np.testing.assert_array_equal(ids, want[name].numpy())
        np.testing.assert_allclose(
            encoder.encode_one(text), encoder.graph.encode([text], 1), atol=1e-5
        )

    runtime = ModelRuntime(emb)
    try:
        assert runtime.info()["query_backend"] == "onnx-int8"
        # A query's vector never depends on the queries it is embedded with.
        one = asyncio.run(runtime.embed_query(queries[0]))
        np.testing.assert_array_equal(one, quick[0])
        np.testing.assert_array_equal(emb.embed_queries(queries[3:6]), quick[3:6])
        np.testing.assert_allclose(asyncio.run(runtime.embed(queries[:1]))[0], exact[0], atol=1e-5)
    finally:
        runtime.close()

    def broken(source: Path, target: Path) -> None:
        raise RuntimeError("no quantizer")

    monkeypatch.setattr(onnx_backend, "_quantize", broken)
    fallback = SentenceTransformerEmbedder(
        device="cpu", backend="onnx", cache_dir=tmp_path / "other", query_int8=True
    )
    assert fallback.query_backend == "onnx"  # documents and queries share the float graph
    assert "int8 query graph unavailable" in caplog.text
    np.testing.assert_allclose(fallback.embed_queries(queries[:3]), exact[:3], atol=1e-5)
