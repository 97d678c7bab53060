"""Training, listing, activation and rollback of write-policy versions (``learned``).

A training run labels the tenant's recorded decisions (``memsvc.store.policies``:
feedback, what ``ask`` returned, labelled questions), fits a new model over the features
each decision recorded when it was made (so training sees exactly what the policy saw),
and stores it as the next version with its metrics — inactive unless asked."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import Conflict, ValidationFailed
from memsvc.policy import learned, policies
from memsvc.schemas.ingest import (
    PolicyList,
    PolicyRead,
    PolicyTrainRequest,
    PolicyTrainResponse,
    PolicyVersionRead,
)
from memsvc.store import policies as store
from memsvc.store.models import WritePolicyVersion
from memsvc.store.tenants import Principal

NAMES = ("store_all", "learned", "llm")


def _trained(row: WritePolicyVersion) -> PolicyVersionRead:
    return PolicyVersionRead(
        name=row.name,
        version=row.version,
        active=row.active,
        origin="trained",
        metrics=row.metrics,
        training=row.training,
        created_by=row.created_by,
        created_at=row.created_at,
        activated_at=row.activated_at,
    )


def _packaged(name: str, active: bool) -> PolicyVersionRead:
    metrics: dict[str, object] = {}
    training: dict[str, object] = {}
    if name == "learned":
        model = learned.packaged()
        metrics, training = dict(model.metrics), {"data": model.data}
    return PolicyVersionRead(
        name=name,
        version=policies.packaged_version(name),
        active=active,
        origin="package",
        metrics=metrics,
        training=training,
    )


async def listing(session: AsyncSession, *, tenant_id: uuid.UUID) -> PolicyList:
    items = []
    for name in NAMES:
        rows = await store.versions(session, tenant_id=tenant_id, name=name)
        active = next((r for r in rows if r.active), None)
        versions = [_packaged(name, active is None), *(_trained(r) for r in rows)]
        items.append(
            PolicyRead(
                name=name,
                description=policies.DESCRIPTIONS[name],
                trainable=name in policies.TRAINABLE,
                active_version=active.version if active else policies.packaged_version(name),
                versions=versions,
            )
        )
    return PolicyList(items=items)


def _require_trainable(name: str) -> None:
    if name not in policies.TRAINABLE:
        raise ValidationFailed(
            f"policy {name!r} is not trainable", code="not_trainable", detail={"name": name}
        )


async def train(
    session: AsyncSession, *, principal: Principal, name: str, body: PolicyTrainRequest
) -> PolicyTrainResponse:
    _require_trainable(name)
    evidence = {e for q in body.eval_set for e in q.evidence}
    examples = await store.training_examples(
        session, tenant_id=principal.tenant_id, cube_ids=body.cube_ids, evidence=evidence
    )
    positives = sum(y for _, _, y in examples)
    version = max(
        await store.next_version(session, tenant_id=principal.tenant_id, name=name),
        policies.packaged_version(name) + 1,
    )
    data = (
        f"tenant {principal.tenant_id}: {len(examples)} recorded decisions labelled by "
        f"feedback, ask traces and {len(body.eval_set)} labelled questions"
    )
    try:
        model = learned.train([(f, y) for _, f, y in examples], version=version, data=data)
    except ValueError as exc:
        raise ValidationFailed(
            f"cannot train: {exc}",
            code="not_enough_training_data",
            detail={"examples": len(examples), "positives": positives},
        ) from exc
    row = await store.add_version(
        session,
        tenant_id=principal.tenant_id,
        name=name,
        version=version,
        model=model.to_json(),
        metrics=dict(model.metrics),
        training={
            "data": data,
            "examples": len(examples),
            "positives": positives,
            "eval_questions": len(body.eval_set),
            "cube_ids": [str(c) for c in body.cube_ids] if body.cube_ids is not None else None,
        },
        created_by=principal.actor,
    )
    await store.set_rewards(session, [(did, y) for did, _, y in examples])
    if body.activate:
        await store.activate(session, tenant_id=principal.tenant_id, name=name, version=version)
        await session.refresh(row)
    return PolicyTrainResponse(policy=_trained(row), examples=len(examples), positives=positives)


async def activate(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, version: int
) -> PolicyVersionRead:
    """Make ``version`` active; the packaged version's number goes back to the package."""
    _require_trainable(name)
    if version == policies.packaged_version(name):
        await store.activate(session, tenant_id=tenant_id, name=name, version=None)
        return _packaged(name, True)
    row = await store.activate(session, tenant_id=tenant_id, name=name, version=version)
    assert row is not None
    return _trained(row)


async def rollback(session: AsyncSession, *, tenant_id: uuid.UUID, name: str) -> PolicyVersionRead:
    """Back to the trained version before the active one, else to the packaged one; 409
    when the packaged one is active already."""
    _require_trainable(name)
    current = await store.active(session, tenant_id=tenant_id, name=name)
    if current is None:
        raise Conflict(
            f"policy {name!r} runs its packaged version: nothing to roll back",
            code="nothing_to_roll_back",
        )
    earlier = [
        r.version
        for r in await store.versions(session, tenant_id=tenant_id, name=name)
        if r.version < current.version
    ]
    target = max(earlier) if earlier else policies.packaged_version(name)
    return await activate(session, tenant_id=tenant_id, name=name, version=target)
