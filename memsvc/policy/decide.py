"""What a write policy sees of each incoming message, and what it decides (issue 11).

The ingest engine (``memsvc.policy.ingest``) stores every message as a source first (the
veridical layer), embeds it, finds the cube's memories nearest to it, and hands the policy
one ``Batch`` per session thread: the messages in order, each as a ``Situation``. The policy
returns one ``Decision`` per message. Policies are pure over these types (no database, no
HTTP): the same code decides in the service, in training and in the benchmarks.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import numpy as np

Operation = Literal["insert", "update", "merge", "delete", "skip"]
OPERATIONS: tuple[Operation, ...] = ("insert", "update", "merge", "delete", "skip")
PolicyLayer = Literal["core", "semantic", "episodic"]


@dataclass(frozen=True)
class Message:
    """One incoming message, validated (``memsvc.schemas.ingest.IngestMessage``)."""

    index: int  # its place in the request
    role: str  # user | assistant | system | tool
    content: str
    name: str | None = None  # the speaker, when the role is not enough
    timestamp: datetime | None = None
    session_id: str | None = None
    external_id: str | None = None

    @property
    def speaker(self) -> str:
        return self.name or self.role


@dataclass(frozen=True)
class Neighbour:
    """A stored memory near a message (cosine similarity of the embeddings)."""

    id: uuid.UUID
    content: str
    layer: str
    kind: str
    similarity: float
    session_id: str | None = None
    occurred_at: datetime | None = None
    version: int = 1


@dataclass(frozen=True)
class Situation:
    """One message and what the policy may know about it when it decides."""

    message: Message
    embedding: np.ndarray  # unit-norm, the embedder's
    # The cube's nearest live memories (vector search over the whole cube), best first.
    neighbours: Sequence[Neighbour] = ()
    # Position in its session thread (0: first message ever stored for the thread).
    position: int = 0
    # The memory written last from this thread before this request (a merge target),
    # with how many messages it already holds; None when there is none.
    last_memory: Neighbour | None = None
    last_memory_messages: int = 0
    # The thread's last memory of each side before this request, with how many messages it
    # holds: ``user`` (it holds a person's message) and ``agent`` (only the replies of the
    # assistant, a tool or the system). Given with ``last_memory``, on the first message.
    side_memories: Mapping[str, tuple[Neighbour, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    """The messages of one thread in one request, in order (a policy may decide them in one
    call), with the scope they are written for."""

    situations: Sequence[Situation]
    user_id: str | None = None
    agent_id: str | None = None
    # The scope's current core block (profile) text, "" when there is none yet.
    core: str = ""


@dataclass
class Decision:
    """What becomes of one message.

    - ``insert``: a new memory in ``layer`` (``content``, default the message's text).
    - ``update``: a new version of ``target_id`` with ``content`` (a changed fact).
    - ``merge``: fold the message into the memory written just before from the same thread:
      ``target_message`` (the index of an earlier message of this request whose memory it
      joins) or, for the first message of a request, ``target_id`` (the stored last memory).
    - ``delete``: tombstone ``target_id`` (the message retracts it).
    - ``skip``: the source is kept, no memory.
    Layer ``core`` on an insert or update means: add ``content`` to the scope's core block.
    """

    operation: Operation
    layer: PolicyLayer | None = None
    target_id: uuid.UUID | None = None
    target_message: int | None = None
    content: str | None = None
    reason: str = ""
    score: float | None = None
    features: dict[str, float] = field(default_factory=dict)


class WritePolicy(Protocol):
    """A write policy: one decision per situation of the batch, in order."""

    name: str
    version: int

    async def decide(self, batch: Batch) -> list[Decision]: ...
