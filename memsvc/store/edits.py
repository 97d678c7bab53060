"""Optimistic concurrency for edits that the service's own background work does not trip.

An edit names the version it was made against (``expected_version``). Each version
written since is compared with its predecessor:

- all of them made by the system (``SYSTEM_CHANGES``: enrichment, evolution) and none
  changed a field the edit sets: the edit is applied on top of the latest version
  (*rebased*); its version row lists the versions it was rebased over (``rebased_over``);
- otherwise :class:`~memsvc.errors.Conflict` (``version_conflict``, both version numbers
  in ``detail``): a version by any key (another key's, or the same key's own later edit),
  a system version that changed a field the edit sets, or an expected version the memory
  never reached.

:func:`begin` decides under the memory's row lock, held until the transaction ends, so no
version can slip in between the check and the write (``FOR NO KEY UPDATE``: enrichment's
link inserts, which take a key-share lock on the memories they point at, do not wait).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import Conflict, NotFound
from memsvc.schemas import MemoryRead, MemoryUpdate
from memsvc.store.memories import read_many
from memsvc.store.models import Memory, MemoryVersion
from memsvc.store.versions import SNAPSHOT

# Change kinds written by background work; indexing (``ann``) writes no version at all.
SYSTEM_CHANGES = frozenset({"enrich", "evolve"})

# Version fields compared between consecutive versions, by their wire names.
COMPARED = (*SNAPSHOT, "metadata")


def _attr(name: str) -> str:
    return "metadata_" if name == "metadata" else name


@dataclass(frozen=True)
class Step:
    """One version as the rule sees it: its kind of change and the fields it changed."""

    version: int
    change_kind: str
    changed: frozenset[str]


@dataclass(frozen=True)
class Edit:
    """A memory locked for an edit: its latest state and the versions the edit goes over."""

    memory: MemoryRead
    rebased_over: list[int] = field(default_factory=list)
    # What it is indexed by now (its conversational context is kept when content changes).
    index_text: str = ""


def edited_fields(data: MemoryUpdate) -> frozenset[str]:
    """The fields an edit sets (an explicit ``null`` sets one), by their wire names."""
    return frozenset(data.model_dump(exclude_unset=True, exclude={"expected_version", "reason"}))


def steps(history: Sequence[MemoryVersion]) -> list[Step]:
    """Each version after the first of ``history`` (consecutive, oldest first), with its changes."""
    return [
        Step(
            version=cur.version,
            change_kind=cur.change_kind,
            changed=frozenset(
                name for name in COMPARED if getattr(prev, _attr(name)) != getattr(cur, _attr(name))
            ),
        )
        for prev, cur in pairwise(history)
    ]


def rebase_over(
    history: Sequence[Step], *, expected: int, current: int, fields: frozenset[str]
) -> list[int]:
    """The versions an edit made against ``expected`` goes over; Conflict when it may not.

    ``history`` holds the versions ``expected + 1 .. current`` in order.
    """
    message = f"memory is at version {current}, not {expected}"
    detail: dict[str, object] = {"expected_version": expected, "current_version": current}
    if expected > current or [s.version for s in history] != list(range(expected + 1, current + 1)):
        raise Conflict(message, code="version_conflict", detail=detail)
    for step in history:
        system = step.change_kind in SYSTEM_CHANGES
        clash = [n for n in COMPARED if n in step.changed and (not system or n in fields)]
        if system and not clash:
            continue
        what = f"changed {', '.join(clash)}" if clash else "was written since"
        raise Conflict(
            f"{message}: version {step.version} ({step.change_kind}) {what}"
            + (", which this edit sets" if system else ""),
            code="version_conflict",
            detail={
                **detail,
                "conflicting_version": step.version,
                "change_kind": step.change_kind,
                "fields": clash,
            },
        )
    return [s.version for s in history]


async def begin(
    session: AsyncSession, *, tenant_id: uuid.UUID, memory_id: uuid.UUID, data: MemoryUpdate
) -> Edit:
    """Lock the memory for an edit and decide whether it applies (else Conflict)."""
    mem = (
        await session.execute(
            select(Memory)
            .where(Memory.id == memory_id, Memory.tenant_id == tenant_id, Memory.status != "erased")
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if mem is None:
        raise NotFound("memory not found")
    over: list[int] = []
    if data.expected_version != mem.version:
        history: list[MemoryVersion] = []
        if data.expected_version < mem.version:
            history = list(
                (
                    await session.execute(
                        select(MemoryVersion)
                        .where(
                            MemoryVersion.memory_id == memory_id,
                            MemoryVersion.tenant_id == tenant_id,
                            MemoryVersion.version >= data.expected_version,
                            MemoryVersion.version <= mem.version,
                        )
                        .order_by(MemoryVersion.version)
                    )
                ).scalars()
            )
        over = rebase_over(
            steps(history),
            expected=data.expected_version,
            current=mem.version,
            fields=edited_fields(data),
        )
    return Edit(
        memory=(await read_many(session, [mem]))[0], rebased_over=over, index_text=mem.index_text
    )
