"""Optional ONNX Runtime path for a sentence-transformers model on CPU.

The graph is exported locally from the loaded weights (never downloaded), cached on
disk, and checked against the torch model on every load; callers fall back to torch
when anything here fails.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memsvc.runtime.base import Vectors, l2_normalize
from memsvc.runtime.batching import by_length

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

# Bump when the exported graph changes shape or meaning, so old cache files are ignored.
EXPORT_FORMAT = 1
MIN_COSINE = 0.9999
# Exports of the same model kept besides the one in use (other installs on this machine).
KEEP_OTHERS = 2
# The int8 query graph is used only while it stays this close to the float graph on every
# probe text (measured: 0.973 for "ok", 0.981 for "", 0.990-0.994 for the others; a broken
# graph lands far below).
MIN_INT8_COSINE = 0.95
OPSET = 17

# Probes cover the traced branches: one unpadded text, a padded batch, truncation, unicode.
VERIFY_TEXTS = (
    "Where did Caroline go last weekend?",
    "",
    "ok",
    "Melanie painted a sunrise over the lake after her pottery class on 8 May 2023.",
    "Gästebuch: naïve café résumé — 東京で会いましょう",
    " ".join(["memory"] * 600),
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/memsvc/onnx`` (``~/.cache/memsvc/onnx`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memsvc" / "onnx"


def dependencies_available() -> bool:
    """True when both ``onnx`` (needed by the exporter) and ``onnxruntime`` import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_key(name_or_path: str) -> str:
    """Hash of the model's files (size, mtime), library versions and the export format."""
    import onnxruntime
    import torch

    parts = [str(EXPORT_FORMAT), str(OPSET), torch.__version__, onnxruntime.__version__]
    root = Path(name_or_path)
    if root.is_dir():
        parts.append(str(root.resolve()))
        for path in sorted(root.rglob("*")):
            if path.is_file():
                stat = path.stat()
                parts.append(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}")
    else:
        # A hub name: the offline cache may change under us; load-time verification catches it.
        parts.append(name_or_path)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _tokenize(model: SentenceTransformer, texts: list[str]) -> dict[str, Any]:
    """Model inputs for texts (``preprocess`` in sentence-transformers 6, ``tokenize`` before)."""
    method = getattr(model, "preprocess", None) or model.tokenize
    features: dict[str, Any] = method(texts)
    return features


class OnnxSentenceEncoder:
    """Runs an exported sentence-transformers graph with ONNX Runtime, tokenising with the model.

    ``threads``: ONNX Runtime's intra-op threads (0: one per core)."""

    def __init__(self, model: SentenceTransformer, onnx_path: Path, *, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle pool threads must not spin: torch (reranker, fallback) shares these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        # The graph's input names, in the order it declares them.
        self.inputs = [node.name for node in self._session.get_inputs()]
        self._model = model
        self.path = onnx_path

    def encode(self, texts: Sequence[str], batches: int | Sequence[Sequence[int]]) -> Vectors:
        """Unit vectors for texts, in order. ``batches``: the model calls, as lists of indices
        (``batching.padded_batches``), or a batch size (longest first, by characters)."""
        items = list(texts)
        if isinstance(batches, int):
            batches = by_length([len(text) for text in items], batches)
        out: Vectors | None = None
        for batch in batches:
            idx = list(batch)
            features = _tokenize(self._model, [items[i] for i in idx])
            raw = self.run({name: features[name].numpy() for name in self.inputs})
            if out is None:
                out = np.empty((len(items), raw.shape[1]), dtype=np.float32)
            out[idx] = raw
        if out is None:
            raise ValueError("encode() needs at least one text")
        return l2_normalize(out)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's raw (unnormalised) float32 rows for a batch of model inputs."""
        return np.asarray(self._session.run(None, feed)[0], dtype=np.float32)


class QueryEncoder:
    """One search query at a time through a graph (the int8 copy), on a tokenizer of its own.

    The query is what a search waits for; this path keeps it short:

    - one intra-op thread: a ten-token query gains nothing from a second one, which only
      contends with the event loop and Postgres for the cores (int8, one query: 2.3 -> 1.6 ms
      p50, 3.6 -> 1.9 ms p95 on 2 cores);
    - its own copy of the model's fast tokenizer, truncating as the model does, so a query
      never waits for a write's batch to give the shared one back (``Tokenizer.encode``
      directly: 0.11 -> 0.03 ms a query).

    Nothing in it changes after construction: threads may share it."""

    def __init__(self, model: SentenceTransformer, onnx_path: Path) -> None:
        from tokenizers import Tokenizer

        self.graph = OnnxSentenceEncoder(model, onnx_path, threads=1)
        backend = getattr(model.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError("the model's tokenizer is not a fast tokenizer")
        self._tokenizer = Tokenizer.from_str(backend.to_str())
        self._tokenizer.no_padding()
        max_length = model.max_seq_length
        if max_length is None:
            raise ValueError("the model has no maximum sequence length to truncate at")
        self._tokenizer.enable_truncation(max_length=int(max_length))

    def features(self, text: str) -> dict[str, np.ndarray]:
        """The graph's inputs for one text (a batch of one), as ``model.preprocess`` gives."""
        enc = self._tokenizer.encode(text)
        columns = {
            "input_ids": enc.ids,
            "attention_mask": enc.attention_mask,
            "token_type_ids": enc.type_ids,
        }
        return {name: np.asarray([columns[name]], dtype=np.int64) for name in self.graph.inputs}

    def encode_one(self, text: str) -> Vectors:
        """The (1, dim) unit vector of one text."""
        return l2_normalize(self.graph.run(self.features(text)))


def export(model: SentenceTransformer, target: Path) -> None:
    """Trace the model (tokens to pooled sentence embedding) into an ONNX file, atomically."""
    import torch

    sample = _tokenize(model, ["a short text", "a longer text so that the sample is padded"])
    names = [key for key, value in sample.items() if isinstance(value, torch.Tensor)]
    extras = {key: value for key, value in sample.items() if not isinstance(value, torch.Tensor)}

    class _Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            features: dict[str, Any] = dict(zip(names, tensors, strict=True))
            features.update(extras)
            embedding: torch.Tensor = self.model(features)["sentence_embedding"]
            return embedding

    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["sentence_embedding"] = {0: "batch"}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.stem, suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        # The legacy TorchScript exporter is the one that works without onnxscript; its
        # deprecation and tracer warnings are expected here and checked by verify().
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Graph().eval(),
                tuple(sample[name] for name in names),
                tmp_name,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the cache is not secret
        os.replace(tmp_name, target)  # atomic: concurrent workers never read a half file
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def verify(model: SentenceTransformer, encoder: OnnxSentenceEncoder) -> float:
    """Lowest cosine between torch and ONNX vectors over the probe texts."""
    texts = list(VERIFY_TEXTS)
    expected = np.asarray(
        model.encode(
            texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ),
        dtype=np.float32,
    )
    # One batch and one-by-one, so both padded and unpadded shapes are exercised.
    batched = encoder.encode(texts, len(texts))
    single = np.concatenate([encoder.encode([text], 1) for text in texts])
    if batched.shape != expected.shape:
        return -1.0
    return float(min((expected * batched).sum(axis=1).min(), (expected * single).sum(axis=1).min()))


def prune(cache_dir: Path, slug: str, in_use: Path, *, keep: int = KEEP_OTHERS) -> list[Path]:
    """Remove the exports of model ``slug`` other than ``in_use``'s (its graph and the int8
    query graph derived from it) and the ``keep`` newest others, and export leftovers older
    than an hour; returns what was removed. Each install, upgrade or new virtual environment
    keys a new export (the key names the model's files and the library versions), and a
    graph is about 90 MB: one machine's cache had grown to 32 of them (2.8 GB). An install
    whose export was pruned exports again when it next starts."""
    # Only this model's files: a slug that extends this one is another model.
    ours = re.compile(rf"{re.escape(slug)}-([0-9a-f]{{20}})(\.onnx|\.q8\.onnx|.*\.tmp)")
    by_key: dict[str, list[Path]] = {}
    leftovers: list[Path] = []
    stale = time.time() - 3600
    keep_key = in_use.name[len(slug) + 1 : len(slug) + 21]
    for path in cache_dir.iterdir():
        match = ours.fullmatch(path.name)
        if match is None or match.group(1) == keep_key:
            continue
        if path.suffix == ".tmp":
            if path.stat().st_mtime < stale:
                leftovers.append(path)
        else:
            by_key.setdefault(match.group(1), []).append(path)
    newest = sorted(by_key, key=lambda k: max(p.stat().st_mtime for p in by_key[k]), reverse=True)
    removed: list[Path] = []
    for path in [*(p for k in newest[keep:] for p in by_key[k]), *leftovers]:
        try:
            path.unlink()
        except FileNotFoundError:  # another process pruned it first
            continue
        removed.append(path)
    if removed:
        logger.info("removed %d old ONNX exports of %s from %s", len(removed), slug, cache_dir)
    return removed


def load(
    model: SentenceTransformer, name_or_path: str, cache_dir: Path, *, label: str
) -> OnnxSentenceEncoder:
    """Cached or freshly exported encoder that matches torch; raises if it cannot be had.
    Old exports of the same model are pruned (``prune``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-") or "model"
    target = cache_dir / f"{slug}-{cache_key(name_or_path)}.onnx"
    encoder = _cached_or_exported(model, target)
    try:
        prune(cache_dir, slug, target)
    except OSError:  # a read-only or shared cache: pruning is housekeeping, never fatal
        logger.warning("could not prune the ONNX cache %s", cache_dir, exc_info=True)
    return encoder


def load_int8(model: SentenceTransformer, encoder: OnnxSentenceEncoder) -> QueryEncoder | None:
    """An int8 copy of ``encoder``'s graph for queries (weights quantised per channel,
    ``onnxruntime.quantization``), cached beside it; None when it cannot be had or strays
    from the float graph by more than ``MIN_INT8_COSINE`` on the probe texts.

    A single query is the one text a search waits for: 4.3 -> 2.6 ms (int8 per tensor) and
    7.2 -> 3.9 ms (per channel) on 2 busy cores. Per channel, the dev sets' 331 questions
    kept a cosine of 0.994 (median; 0.989 least) to their float vectors, and rescoring both
    dev sets' top 50 with them gave the same recall@10 (LoCoMo 0.818, LongMemEval 0.890).
    Stored vectors stay float: documents are embedded by ``encoder``."""
    target = encoder.path.with_suffix(".q8.onnx")
    try:
        if not target.exists():
            _quantize(encoder.path, target)
        quantized = QueryEncoder(model, target)
        texts = list(VERIFY_TEXTS)
        # The query tokenizer must give the model's own inputs (truncation included).
        for text in texts:
            want_ids = _tokenize(model, [text])["input_ids"].numpy()
            if not np.array_equal(quantized.features(text)["input_ids"], want_ids):
                raise ValueError(f"the query tokenizer disagrees with the model on {text[:40]!r}")
        want = encoder.encode(texts, len(texts))
        got = np.concatenate([quantized.encode_one(text) for text in texts])
        cosine = float((want * got).sum(axis=1).min())
    # Named boundary: the int8 graph is an optional accelerator for queries.
    except Exception:
        logger.warning("int8 query graph unavailable; queries use the float graph", exc_info=True)
        return None
    if cosine < MIN_INT8_COSINE:
        logger.warning(
            "int8 query graph strays from the float one (min cosine %.4f); not used", cosine
        )
        return None
    return quantized


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp_name = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        quantize_dynamic(str(source), tmp_name, weight_type=QuantType.QInt8, per_channel=True)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _cached_or_exported(model: SentenceTransformer, target: Path) -> OnnxSentenceEncoder:
    if target.exists():
        try:
            encoder = OnnxSentenceEncoder(model, target)
            if verify(model, encoder) >= MIN_COSINE:
                return encoder
            logger.info("cached ONNX graph %s disagrees with torch; exporting again", target)
        # Named boundary: a damaged or stale cache file is replaced, whatever ORT said about it.
        except Exception:
            logger.info("cached ONNX graph %s unreadable; exporting again", target, exc_info=True)
    export(model, target)
    encoder = OnnxSentenceEncoder(model, target)
    cosine = verify(model, encoder)
    if cosine < MIN_COSINE:
        raise ValueError(f"ONNX graph disagrees with torch (min cosine {cosine:.6f})")
    return encoder
