"""The graph channel: 1-hop expansion along live links from the best fused hits (A-MEM).

Memories linked to the top ``seeds`` results of the other channels are candidates too,
scored by ``sum(link weight / seed rank)`` over the seeds they hang off, best first. The
seeds themselves are left out (this channel adds neighbours, it does not re-vote for
hits), and neighbours must pass the same scoped select as every channel (tenant, cube,
filters, ``as_of``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.store.ann import Ranked
from memsvc.store.models import Link, Memory

DEFAULT_SEEDS = 10


async def graph_channel(
    session: AsyncSession,
    base: Select[Any],
    fused: Ranked,
    depth: int,
    *,
    seeds: int = DEFAULT_SEEDS,
) -> Ranked:
    """Up to ``depth`` neighbours of the first ``seeds`` fused hits, best first."""
    head = [mid for mid, _ in fused[:seeds]]
    if not head:
        return []
    rank = {mid: i for i, mid in enumerate(head, start=1)}
    allowed = base.with_only_columns(Memory.id).scalar_subquery()
    rows = await session.execute(
        select(Link.source_id, Link.target_id, Link.weight).where(
            Link.status == "active",
            or_(
                Link.source_id.in_(head) & Link.target_id.in_(allowed),
                Link.target_id.in_(head) & Link.source_id.in_(allowed),
            ),
        )
    )
    scores: dict[uuid.UUID, float] = {}
    for src, dst, weight in rows:
        for seed, other in ((src, dst), (dst, src)):
            if seed in rank and other not in rank:
                scores[other] = scores.get(other, 0.0) + float(weight) / rank[seed]
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return ranked[:depth]
