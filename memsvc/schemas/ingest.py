"""``ingest``: conversation messages through a write policy (after Mem-alpha); the decisions,
the core block, feedback and the write policies with their trained versions.

``POST /v1/cubes/{cube_id}/ingest`` stores every message as a source (nothing said is lost,
whatever the policy decides), then the policy returns one decision per message: ``insert``,
``update``, ``merge``, ``delete`` or ``skip``, into layer ``core``, ``semantic`` or
``episodic``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator

from memsvc.schemas.common import JSONObject, Page, ReadModel, Timestamp, WireModel
from memsvc.schemas.cubes import PolicyName
from memsvc.schemas.decisions import DecisionRead, Operation
from memsvc.schemas.memories import MemoryRead

Role = Literal["user", "assistant", "system", "tool"]
FeedbackSignal = Literal["used", "wrong", "irrelevant"]

MAX_MESSAGES = 500
MAX_NAME = 200


class IngestMessage(WireModel):
    role: Role
    content: str = Field(min_length=1)
    # The speaker's name when the role is not enough ("Caroline").
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    timestamp: Timestamp | None = None
    session_id: str | None = Field(default=None, min_length=1, max_length=200)
    external_id: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _not_blank(self) -> IngestMessage:
        if not self.content.strip():
            raise ValueError("content must not be blank")
        return self


class IngestRequest(WireModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    messages: list[IngestMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    # Default: the cube's policy, else ``learned``.
    policy: PolicyName | None = None
    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    agent_id: str | None = Field(default=None, min_length=1, max_length=200)
    # Answer 202 at once with a job; the work runs on the queue.
    async_: StrictBool = Field(default=False, alias="async")


class IngestResponse(ReadModel):
    ingest_id: uuid.UUID
    policy: str
    policy_version: int
    decisions: list[DecisionRead]
    # The memories created or changed, in their state after the request.
    memories: list[MemoryRead]
    # The scope's core block when the request changed it.
    core: MemoryRead | None = None
    # LLM calls the policy made (``llm``: one per batch of a session, plus repairs).
    llm_calls: int = 0
    # Why the request was not decided by the policy it asked for (e.g. the LLM failed and
    # the learned policy decided instead); empty when it was.
    warnings: list[str] = Field(default_factory=list)


class IngestAccepted(ReadModel):
    """The answer of ``"async": true``: follow ``GET /v1/jobs/{job_id}`` for the result."""

    ingest_id: uuid.UUID
    job_id: int
    status: Literal["queued"] = "queued"


class DecisionFilters(WireModel):
    operation: Operation | None = None
    ingest_id: uuid.UUID | None = None
    # Decisions that produced a version of this memory or acted on it.
    memory_id: uuid.UUID | None = None
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=100, ge=1, le=1000)


DecisionPage = Page[DecisionRead]


class CoreRead(ReadModel):
    """The core blocks (profiles) of a cube, one per user/agent scope."""

    items: list[MemoryRead]


class FeedbackCreate(WireModel):
    memory_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)
    signal: FeedbackSignal
    trace_id: uuid.UUID | None = None


class FeedbackRead(ReadModel):
    recorded: int


class PolicyVersionRead(ReadModel):
    name: str
    version: int
    active: bool
    # "package": shipped with memsvc; "trained": a tenant's training run.
    origin: Literal["package", "trained"]
    metrics: JSONObject = Field(default_factory=dict)
    training: JSONObject = Field(default_factory=dict)
    created_by: str | None = None
    created_at: datetime | None = None
    activated_at: datetime | None = None


class PolicyRead(ReadModel):
    name: str
    description: str
    trainable: bool
    active_version: int
    versions: list[PolicyVersionRead]


class PolicyList(ReadModel):
    items: list[PolicyRead]


class EvalQuestion(WireModel):
    """A question with the messages (their ``external_id``s) that answer it."""

    question: str = Field(min_length=1, max_length=8000)
    evidence: list[str] = Field(min_length=1, max_length=1000)


class PolicyTrainRequest(WireModel):
    # Cubes whose decisions are the training examples (default: every cube of the tenant).
    cube_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)
    # Labelled questions: a message named as evidence is one worth keeping.
    eval_set: list[EvalQuestion] = Field(default_factory=list, max_length=100_000)
    activate: StrictBool = False


class PolicyTrainResponse(ReadModel):
    policy: PolicyVersionRead
    examples: int
    positives: int


class PolicyActivate(WireModel):
    version: StrictInt = Field(ge=1, le=2**31 - 1)
