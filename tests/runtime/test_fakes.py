"""The in-tree fakes: deterministic, normalised, and similar enough to real models to test with."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from memsvc.config import ModelSettings
from memsvc.runtime import FakeEmbedder, FakeReranker, build_runtime, l2_normalize


def test_fake_embedder_is_deterministic_and_normalised() -> None:
    texts = ["Caroline went to the support group", "", "Caroline went to the support group"]
    a = FakeEmbedder().embed(texts)
    b = FakeEmbedder().embed(texts)
    assert a.shape == (3, 384)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a[0], a[2])


def test_fake_embedder_shared_words_are_closer() -> None:
    query, near, far = FakeEmbedder(dim=64).embed(
        ["Melanie painted a sunrise", "Melanie painted the lake at sunrise", "stock prices fell"]
    )
    assert float(query @ near) > 0.5 > float(query @ far)


def test_fake_embedder_empty_input() -> None:
    assert FakeEmbedder(dim=8).embed([]).shape == (0, 8)


def test_fake_reranker_orders_by_overlap() -> None:
    scores = FakeReranker().score(
        "where did Caroline go", ["Caroline went home", "where did Caroline go?", "unrelated"]
    )
    assert scores.dtype == np.float32
    assert list(np.argsort(-scores)) == [1, 0, 2]
    np.testing.assert_array_equal(
        scores,
        FakeReranker().score_pairs(
            [
                ("where did Caroline go", d)
                for d in ["Caroline went home", "where did Caroline go?", "unrelated"]
            ]
        ),
    )
    assert FakeReranker().score("q", []).shape == (0,)


def test_l2_normalize_keeps_zero_rows() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    with pytest.raises(ValueError):
        l2_normalize(np.zeros(3))


def test_fake_runtime_async_api() -> None:
    rt = build_runtime(ModelSettings(embedding_dim=32, reranker="any"), fake=True)
    plain = build_runtime(ModelSettings(embedding_dim=32), fake=True)
    try:

        async def main() -> None:
            vectors = await rt.embed(["a b", "c d"])
            # An embedder without a query path of its own embeds queries as documents.
            one = await rt.embed_query("a b")
            np.testing.assert_array_equal(one, vectors[0])
            assert one.shape == (32,)
            scores = await rt.rerank("a b", ["a", "b c", "z"])
            assert scores is not None
            assert scores.shape == (3,)
            assert await plain.rerank("a", ["a"]) is None
            assert (await rt.embed([])).shape == (0, 32)

        asyncio.run(main())
        np.testing.assert_array_equal(rt.embed_sync(["a b"]), FakeEmbedder(32).embed(["a b"]))
        assert rt.info() == {
            "device": "cpu",
            "backend": "fake",
            "query_backend": "fake",
            "embedder": "fake-embedder",
            "embedding_dim": 32,
            "reranker": "fake-reranker",
            "reranker_device": "cpu",
            "batch_size": 64,
            "batch_wait_ms": 0.0,
        }
        report = rt.self_test(n=16)
        assert report["texts"] == 16
        assert report["embed_texts_per_s"] > 0
        assert report["rerank_pairs_per_s"] is not None
        assert plain.self_test(n=4)["rerank_pairs_per_s"] is None
    finally:
        rt.close()
        plain.close()
