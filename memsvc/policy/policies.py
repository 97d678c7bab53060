"""The write policies ``ingest`` can run, by name: ``store_all`` (every message an episodic
memory: the baseline), ``learned`` (a small model over features of each message against
the cube, ``memsvc.policy.learned``) and ``llm`` (a prompted model with Mem-alpha's tool
vocabulary, ``memsvc.policy.llm_policy``). A tenant's trained versions of ``learned`` live
in ``write_policy``; with none active the packaged model decides."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.config import IngestSettings
from memsvc.errors import ValidationFailed
from memsvc.llm import LLM, Usage
from memsvc.policy import learned
from memsvc.policy.decide import Batch, Decision, WritePolicy
from memsvc.policy.llm_policy import LLMPolicy
from memsvc.store import policies as store

DESCRIPTIONS = {
    "store_all": "Every message becomes an episodic memory (the baseline).",
    "learned": (
        "A small model over features of each message against the cube (novelty, "
        "similarity, entities, numbers and dates, first person, questions, speaker, "
        "length, position) decides insert / update / merge / delete / skip and the layer; "
        "trainable from feedback and labelled questions."
    ),
    "llm": (
        "A prompted LLM with Mem-alpha's tool vocabulary (insert / update / delete over core, "
        "semantic and episodic) sees each session's messages with the cube's nearest "
        "memories and decides them in one call per batch."
    ),
}
TRAINABLE = ("learned",)


class StoreAll:
    """Every message an episodic memory of its own."""

    name = "store_all"
    version = 1

    async def decide(self, batch: Batch) -> list[Decision]:
        return [
            Decision(operation="insert", layer="episodic", reason="store_all: every message kept")
            for _ in batch.situations
        ]


@dataclass(frozen=True)
class Chosen:
    """The policy a request runs and where its version came from."""

    policy: WritePolicy
    origin: str  # "package" | "trained"


async def resolve(
    session: AsyncSession,
    *,
    name: str,
    tenant_id: uuid.UUID,
    llm: LLM | None,
    settings: IngestSettings,
    usage: Usage | None = None,
) -> Chosen:
    """The policy of that name for the tenant: its active trained version, else the
    packaged one. ``llm`` without a configured LLM is a 422."""
    if name == "store_all":
        return Chosen(StoreAll(), "package")
    if name == "learned":
        row = await store.active(session, tenant_id=tenant_id, name="learned")
        if row is not None:
            model = learned.LearnedModel.from_json(row.model)
            return Chosen(learned.LearnedPolicy(model), "trained")
        return Chosen(learned.LearnedPolicy(learned.packaged()), "package")
    if name == "llm":
        if llm is None:
            raise ValidationFailed(
                'policy "llm" needs an LLM; none is configured (MEMSVC_LLM__MODEL)',
                code="llm_not_configured",
                detail={"field": "policy"},
            )
        return Chosen(LLMPolicy(llm, usage=usage, chunk_size=settings.llm_batch), "package")
    raise ValidationFailed(f"unknown policy {name!r}", code="unknown_policy")


def packaged_version(name: str) -> int:
    """The version number of the packaged policy (trained ones count on from it)."""
    if name == "learned":
        return learned.packaged().version
    return 1
