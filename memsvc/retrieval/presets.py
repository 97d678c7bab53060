"""Named retrieval strategies: data, not code (after graphiti's search recipes)."""

from __future__ import annotations

from memsvc.errors import BadRequest
from memsvc.schemas import ChannelConfig, RetrievalConfig

PRESETS: dict[str, RetrievalConfig] = {
    "fast": RetrievalConfig(vector=ChannelConfig(weight=1.0, depth=50), fulltext=None),
    "hybrid": RetrievalConfig(
        vector=ChannelConfig(weight=1.0, depth=100), fulltext=ChannelConfig(weight=1.0, depth=100)
    ),
    "deep": RetrievalConfig(
        vector=ChannelConfig(weight=1.0, depth=200),
        fulltext=ChannelConfig(weight=1.0, depth=200),
        rerank=True,
        rerank_depth=50,
    ),
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
