"""Trained write-policy versions (``write_policy``) and the reward signals they learn from:
feedback agents report on memories, what retrieval returned (``retrieval_trace``) and
labelled questions."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import NotFound
from memsvc.store.models import (
    Feedback,
    Memory,
    RetrievalTrace,
    Source,
    WriteDecision,
    WritePolicyVersion,
    core_table,
)

# Feedback signals and the reward they give the decisions behind the memory.
REWARDS = {"used": 1.0, "wrong": 0.0, "irrelevant": 0.0}


async def versions(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str
) -> list[WritePolicyVersion]:
    rows = await session.execute(
        select(WritePolicyVersion)
        .where(WritePolicyVersion.tenant_id == tenant_id, WritePolicyVersion.name == name)
        .order_by(WritePolicyVersion.version)
    )
    return list(rows.scalars())


async def active(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str
) -> WritePolicyVersion | None:
    """The tenant's active trained version of a policy; None: the packaged one."""
    row = await session.execute(
        select(WritePolicyVersion).where(
            WritePolicyVersion.tenant_id == tenant_id,
            WritePolicyVersion.name == name,
            WritePolicyVersion.active,
        )
    )
    return row.scalar_one_or_none()


async def next_version(session: AsyncSession, *, tenant_id: uuid.UUID, name: str) -> int:
    """One past the tenant's highest trained version (training runs of one tenant and
    policy are serialised by a lock held until the transaction ends)."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"policy|{tenant_id}|{name}", 0)))
    )
    top = (
        await session.execute(
            select(func.max(WritePolicyVersion.version)).where(
                WritePolicyVersion.tenant_id == tenant_id, WritePolicyVersion.name == name
            )
        )
    ).scalar()
    return int(top or 0) + 1


async def add_version(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    name: str,
    version: int,
    model: dict[str, Any],
    metrics: dict[str, Any],
    training: dict[str, Any],
    created_by: str,
) -> WritePolicyVersion:
    """Store a trained version (inactive)."""
    row = WritePolicyVersion(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        name=name,
        version=version,
        active=False,
        model=model,
        metrics=metrics,
        training=training,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def activate(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, version: int | None
) -> WritePolicyVersion | None:
    """Make ``version`` the active one (None: back to the packaged model); 404 for a
    version the tenant does not have."""
    target = None
    if version is not None:
        target = (
            await session.execute(
                select(WritePolicyVersion).where(
                    WritePolicyVersion.tenant_id == tenant_id,
                    WritePolicyVersion.name == name,
                    WritePolicyVersion.version == version,
                )
            )
        ).scalar_one_or_none()
        if target is None:
            raise NotFound(f"policy {name!r} has no trained version {version}")
    await session.execute(
        update(WritePolicyVersion)
        .where(
            WritePolicyVersion.tenant_id == tenant_id,
            WritePolicyVersion.name == name,
            WritePolicyVersion.active,
        )
        .values(active=False)
        .execution_options(synchronize_session=False)
    )
    if target is None:
        return None
    await session.flush()
    await session.execute(
        update(WritePolicyVersion)
        .where(WritePolicyVersion.id == target.id)
        .values(active=True, activated_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    await session.refresh(target)
    return target


async def add_feedback(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    memory_ids: Sequence[uuid.UUID],
    signal: str,
    trace_id: uuid.UUID | None,
    actor: str,
) -> int:
    """Record a signal on memories of the tenant; 404 (nothing written) when any is not one."""
    ids = list(dict.fromkeys(memory_ids))
    rows = await session.execute(
        select(Memory.id, Memory.cube_id).where(
            Memory.tenant_id == tenant_id, Memory.id.in_(ids), Memory.status != "erased"
        )
    )
    cube_of = {mid: cid for mid, cid in rows}
    missing = [str(m) for m in ids if m not in cube_of]
    if missing:
        raise NotFound("memory not found", detail={"memory_ids": missing})
    await session.execute(
        insert(core_table(Feedback)),
        [
            {
                "tenant_id": tenant_id,
                "cube_id": cube_of[m],
                "memory_id": m,
                "trace_id": trace_id,
                "signal": signal,
                "actor": actor,
            }
            for m in ids
        ],
    )
    return len(ids)


async def training_examples(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_ids: Collection[uuid.UUID] | None,
    evidence: Collection[str],
) -> list[tuple[int, dict[str, Any], int]]:
    """Labelled decisions (id, features, label) of the tenant's cubes.

    A message is worth keeping (1) when a labelled question names it as evidence (by its
    ``external_id``), or when the memory it went into was reported ``used`` or returned by
    an ``ask``; it was not (0) when that memory was reported ``wrong`` or ``irrelevant``, or
    when the cube has labelled questions and none names it. Decisions with no signal at
    all are left out: nothing is known of them."""
    stmt = (
        select(
            WriteDecision.id,
            WriteDecision.cube_id,
            WriteDecision.features,
            WriteDecision.memory_id,
            Source.external_id,
        )
        .join(Source, Source.id == WriteDecision.source_id)
        .where(WriteDecision.tenant_id == tenant_id, WriteDecision.features != {})
        .order_by(WriteDecision.id)
    )
    if cube_ids is not None:
        stmt = stmt.where(WriteDecision.cube_id.in_(list(cube_ids)))
    rows = (await session.execute(stmt)).all()
    wanted = set(evidence)
    labelled_cubes = {cid for _, cid, _, _, ext in rows if ext is not None and ext in wanted}
    memory_ids = list({mid for *_, mid, _ in rows if mid is not None})
    signal: dict[uuid.UUID, float] = {}
    if memory_ids:
        fb = await session.execute(
            select(Feedback.memory_id, Feedback.signal)
            .where(Feedback.tenant_id == tenant_id, Feedback.memory_id.in_(memory_ids))
            .order_by(Feedback.id)
        )
        for mid, sig in fb:
            signal[mid] = REWARDS.get(sig, 0.0)  # the latest report wins
        returned = await session.execute(
            select(func.unnest(RetrievalTrace.memory_ids))
            .where(
                RetrievalTrace.tenant_id == tenant_id,
                RetrievalTrace.memory_ids.overlap(memory_ids),
            )
            .distinct()
        )
        for (mid,) in returned:
            signal.setdefault(mid, 1.0)
    out: list[tuple[int, dict[str, Any], int]] = []
    for did, cid, feats, mid, ext in rows:
        if ext is not None and ext in wanted:
            label = 1
        elif mid is not None and mid in signal:
            label = int(signal[mid] >= 0.5)
        elif cid in labelled_cubes:
            label = 0
        else:
            continue
        out.append((int(did), dict(feats), label))
    return out


async def set_rewards(session: AsyncSession, labels: Sequence[tuple[int, int]]) -> None:
    """Write the reward each decision was trained with (one statement)."""
    if labels:
        table = core_table(WriteDecision)
        await session.execute(
            update(table).where(table.c.id == bindparam("did")).values(reward=bindparam("r")),
            [{"did": did, "r": float(label)} for did, label in labels],
        )
