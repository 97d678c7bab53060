"""Imported embeddings join the store unit-norm, as every stored vector is: search scores
stored vectors by inner product (``memsvc.store.ann.exact_distance``)."""

from __future__ import annotations

import numpy as np

from memsvc.store.models import EMBEDDING_DIM
from memsvc.store.transfer import decode_vector, encode_vector


def test_an_imported_vector_is_normalised_and_a_degenerate_one_refused() -> None:
    rng = np.random.default_rng(3)
    raw = rng.standard_normal(EMBEDDING_DIM).astype(np.float32) * 7.5
    got = decode_vector(encode_vector(raw))
    assert got is not None
    assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5
    np.testing.assert_allclose(got, raw / np.linalg.norm(raw), rtol=1e-5, atol=1e-7)
    unit = (raw / np.linalg.norm(raw)).astype(np.float32)
    # A unit vector (an export of ours) comes back bit for bit.
    np.testing.assert_array_equal(decode_vector(encode_vector(unit)), unit)
    # Zero, NaN and a wrong size are not vectors of ours: the memory is embedded again.
    assert decode_vector(encode_vector(np.zeros(EMBEDDING_DIM, dtype=np.float32))) is None
    bad = raw.copy()
    bad[0] = np.nan
    assert decode_vector(encode_vector(bad)) is None
    assert decode_vector(encode_vector(raw[:10])) is None
    assert decode_vector("not base64!") is None
