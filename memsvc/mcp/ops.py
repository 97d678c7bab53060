"""The memory tools as plain async functions over the SDK client (no ``mcp`` import here).

Each returns compact JSON text for a model to read: ids, content, when, why.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from memsvc.errors import Conflict, MemsvcError, NotFound
from memsvc.schemas import (
    AskBudget,
    AskRequest,
    AskResponse,
    LinkCreate,
    MemoryCreate,
    MemoryRead,
    SearchFilters,
    SearchRequest,
    SourceCreate,
)
from memsvc.schemas.ask import AskMode
from memsvc.schemas.common import bad_text
from memsvc.schemas.cubes import PolicyName
from memsvc.schemas.ingest import MAX_MESSAGES as MAX_TURNS
from memsvc.schemas.ingest import IngestMessage, IngestResponse
from memsvc.schemas.ingest import Role as TurnRole
from memsvc.sdk import AsyncMemoryClient

# Bounds on what a model may send; the API has its own (body size), these give a clear error.
MAX_CONTENT = 20_000
MAX_MESSAGES = 100
DEFAULT_CUBE = "agent-memory"
JSON = dict[str, object]


class ToolFailure(Exception):
    """A tool call that failed in a way to tell the model (bad argument, not found, ...)."""


@dataclass
class Defaults:
    """What a tool uses when the model does not say: the cube and the user/agent ids."""

    cube: str = DEFAULT_CUBE
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None


@dataclass
class CubeCache:
    """Cube name -> id per API key (a cube is created on first use)."""

    ids: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)

    async def resolve(self, client: AsyncMemoryClient, key: str, cube: str) -> uuid.UUID:
        """The id of ``cube`` (an id, or a name created when missing)."""
        clean(cube, "cube", 200)
        try:
            return uuid.UUID(cube)
        except ValueError:
            pass
        found = self.ids.get((key, cube))
        if found is not None:
            return found
        found = await self._find(client, cube)
        if found is None:
            try:
                found = (await client.create_cube(cube)).id
            except Conflict:  # another call created it first
                found = await self._find(client, cube)
                if found is None:
                    raise
        if len(self.ids) > 4096:
            self.ids.clear()
        self.ids[(key, cube)] = found
        return found

    def drop(self, key: str) -> bool:
        """Forget the cubes cached for ``key`` (one was deleted); whether any were."""
        stale = [k for k in self.ids if k[0] == key]
        for k in stale:
            del self.ids[k]
        return bool(stale)

    @staticmethod
    async def _find(client: AsyncMemoryClient, name: str) -> uuid.UUID | None:
        async for existing in client.iter_cubes(page_size=200):
            if existing.name == name:
                return existing.id
        return None


@dataclass
class Binding:
    """One caller's view: its client, its defaults, the cube cache under its key."""

    client: AsyncMemoryClient
    defaults: Defaults
    key: str
    cubes: CubeCache

    async def cube_id(self, cube: str | None) -> uuid.UUID:
        """The cube a call works on."""
        return await self.cubes.resolve(self.client, self.key, cube or self.defaults.cube)


def clean(value: str, name: str, limit: int) -> str:
    """``value`` when it is acceptable text; a ``ToolFailure`` naming ``name`` otherwise."""
    if "\x00" in value:
        raise ToolFailure(f"{name} contains a NUL byte")
    if len(value) > limit:
        raise ToolFailure(f"{name} is longer than {limit} characters")
    return value


def memory_id(value: str) -> uuid.UUID:
    """A memory id argument, or a ``ToolFailure``."""
    try:
        return uuid.UUID(clean(value, "memory_id", 100))
    except ValueError:
        raise ToolFailure(
            f"not a memory id: {value[:60]!r} (ids come from remember/recall)"
        ) from None


def when(moment: datetime | None) -> str | None:
    """A timestamp as compact ISO text."""
    return None if moment is None else moment.isoformat(timespec="seconds")


def compact(memory: MemoryRead) -> JSON:
    """A memory as a model needs it."""
    out: JSON = {"id": str(memory.id), "content": memory.content, "when": when(memory.created_at)}
    if memory.tags:
        out["tags"] = memory.tags
    if memory.status != "active":
        out["status"] = memory.status
    return out


def dump(value: object) -> str:
    """Compact JSON text."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def explain_failure(exc: MemsvcError) -> str:
    """The message a model gets for a service error."""
    return f"{exc.code}: {exc.message}"


class Message(BaseModel):
    """One conversation turn."""

    role: str = Field(default="user", max_length=200, description="user, assistant, ...")
    content: str = Field(min_length=1, max_length=MAX_CONTENT)


async def remember(
    b: Binding,
    *,
    content: str | None,
    messages: Sequence[Message] | None,
    tags: Sequence[str] | None,
    kind: str | None,
    user_id: str | None,
    agent_id: str | None,
    cube: str | None,
) -> str:
    """Store a memory, or one memory per message (the message kept as its source)."""
    if (content is None) == (not messages):
        raise ToolFailure("give either content or a non-empty list of messages, not both")
    if messages is not None and len(messages) > MAX_MESSAGES:
        raise ToolFailure(f"at most {MAX_MESSAGES} messages at once")
    common = {
        "tags": [clean(t, "tag", 200) for t in tags or ()],
        "kind": clean(kind or "fact", "kind", 100),
        "user_id": user_id or b.defaults.user_id,
        "agent_id": agent_id or b.defaults.agent_id,
        "session_id": b.defaults.session_id,
    }
    items: list[MemoryCreate] = []
    try:
        if content is not None:
            items.append(MemoryCreate(content=clean(content, "content", MAX_CONTENT), **common))
        for message in messages or ():
            role = clean(message.role, "role", 200)
            text = clean(message.content, "message content", MAX_CONTENT)
            if not text.strip():
                raise ToolFailure("a message has no content")
            source = SourceCreate(kind="message", speaker=role, text=text)
            items.append(MemoryCreate(content=f"{role}: {text}", sources=[source], **common))
    except ValueError as exc:  # pydantic's ValidationError
        raise ToolFailure(f"invalid memory: {exc}") from None
    created = await b.client.add_many(await b.cube_id(cube), items)
    return dump({"remembered": [compact(m) for m in created]})


async def recall(
    b: Binding,
    *,
    query: str,
    top_k: int,
    tags: Sequence[str] | None,
    user_id: str | None,
    cube: str | None,
    now: str | None = None,
) -> str:
    """Search a cube: the best matches, each with why it matched; ``now`` is the asker's
    current time (relative phrases in the query are read against it)."""
    filters = SearchFilters(
        tags=[clean(t, "tag", 200) for t in tags] if tags else None, user_id=user_id
    )
    try:
        request = SearchRequest(
            query=clean(query, "query", 8000),
            top_k=top_k,
            filters=filters,
            explain=True,
            now=now,
        )
    except ValueError as exc:
        raise ToolFailure(f"invalid query or now: {exc}") from None
    response = await b.client.search(await b.cube_id(cube), request)
    results: list[JSON] = []
    for hit in response.results:
        item = compact(hit.memory)
        item["score"] = round(hit.score, 4)
        if hit.explain:
            item["why"] = ", ".join(
                f"{channel} #{h.rank}" for channel, h in sorted(hit.explain.items())
            )
        results.append(item)
    return dump({"results": results})


class Turn(BaseModel):
    """One conversation turn to ingest."""

    role: TurnRole = Field(default="user", description="user, assistant, system or tool")
    content: str = Field(min_length=1, max_length=MAX_CONTENT)
    name: str | None = Field(default=None, max_length=200, description="The speaker's name.")


async def ingest(
    b: Binding,
    *,
    messages: Sequence[Turn],
    policy: PolicyName | None,
    user_id: str | None,
    agent_id: str | None,
    cube: str | None,
) -> str:
    """Hand a conversation to the service's write policy: every turn is kept as a source and
    the policy decides what memory each becomes (insert, update, merge, delete or skip)."""
    if not messages:
        raise ToolFailure("give at least one message")
    if len(messages) > MAX_TURNS:
        raise ToolFailure(f"at most {MAX_TURNS} messages at once")
    try:
        items = [
            IngestMessage(
                role=m.role,
                content=clean(m.content, "message content", MAX_CONTENT),
                name=None if m.name is None else clean(m.name, "name", 200),
                session_id=b.defaults.session_id,
            )
            for m in messages
        ]
    except ValueError as exc:  # pydantic's ValidationError
        raise ToolFailure(f"invalid message: {exc}") from None
    out = await b.client.ingest(
        await b.cube_id(cube),
        items,
        policy=policy,
        user_id=user_id or b.defaults.user_id,
        agent_id=agent_id or b.defaults.agent_id,
    )
    return dump(ingested(out))


def ingested(out: IngestResponse) -> JSON:
    """An ingest's outcome as a model needs it: operations counted, the memories written
    (with their layer), the core block when it changed, and any warning."""
    operations: dict[str, int] = {}
    for d in out.decisions:
        operations[d.operation] = operations.get(d.operation, 0) + 1
    memories: list[JSON] = []
    for m in out.memories:
        item = compact(m)
        item["layer"] = m.layer
        memories.append(item)
    result: JSON = {
        "ingest_id": str(out.ingest_id),
        "policy": f"{out.policy}@v{out.policy_version}",
        "decisions": operations,
        "memories": memories,
    }
    if out.core is not None:
        result["core"] = compact(out.core)
    if out.warnings:
        result["warnings"] = out.warnings
    return result


async def core(b: Binding, *, user_id: str | None, agent_id: str | None, cube: str | None) -> str:
    """The core block (profile) of a user or agent: what is always worth having in context;
    with neither given nor configured, every core block of the cube."""
    cube_id = await b.cube_id(cube)
    user = user_id or b.defaults.user_id
    agent = agent_id or b.defaults.agent_id
    read = await b.client.get_core(cube_id, user_id=user, agent_id=agent)
    blocks: list[JSON] = []
    for m in read.items:
        item = compact(m)
        item.update(user_id=m.user_id, agent_id=m.agent_id)
        blocks.append(item)
    return dump({"cube": str(cube_id), "core": blocks})


@dataclass(frozen=True)
class Budget:
    """The ``budget`` fields of an ask; None takes the service's default."""

    max_cycles: int | None = None
    max_llm_calls: int | None = None
    max_tokens: int | None = None
    deadline_ms: int | None = None


async def ask(
    b: Binding,
    *,
    question: str,
    top_k: int,
    tags: Sequence[str] | None,
    user_id: str | None,
    cube: str | None,
    now: str | None,
    mode: AskMode,
    budget: Budget,
) -> str:
    """Answer a question from memory by iterative retrieval: the answer (when an LLM is
    configured) and the evidence, each with why it was chosen."""
    filters = SearchFilters(
        tags=[clean(t, "tag", 200) for t in tags] if tags else None, user_id=user_id
    )
    limits = {k: v for k, v in vars(budget).items() if v is not None}
    why = bad_text(clean(question, "question", 8000))
    if why:
        raise ToolFailure(f"question contains a {why}")
    try:
        request = AskRequest(
            question=question,
            top_k=top_k,
            filters=filters,
            now=now,
            mode=mode,
            budget=AskBudget.model_validate(limits) if limits else None,
        )
    except ValueError as exc:  # pydantic's ValidationError
        raise ToolFailure(f"invalid question, now or budget: {exc}") from None
    response = await b.client.ask(
        await b.cube_id(cube),
        request.question,
        now=request.now,
        top_k=request.top_k,
        filters=request.filters,
        mode=request.mode,
        budget=request.budget,
    )
    return dump(answer(response))


def answer(response: AskResponse) -> JSON:
    """An ask's answer as a model needs it: answer, evidence (id, content, when, why),
    cues, what it cost and the trace id (``GET /v1/traces/{id}`` shows every step)."""
    evidence: list[JSON] = []
    for e in response.evidence:
        item = compact(e.memory)
        item["score"] = round(e.score, 4)
        if e.why:
            item["why"] = ", ".join(e.why)
        evidence.append(item)
    out: JSON = {"answer": response.answer, "evidence": evidence}
    if response.cues:
        out["cues"] = response.cues
    out.update(cycles=response.cycles, llm_calls=response.llm_calls)
    if response.stopped:
        out["stopped"] = response.stopped
    out["trace_id"] = str(response.trace_id)
    return out


async def forget(b: Binding, *, memory: str) -> str:
    """Soft-delete a memory (its history stays; an operator can restore it)."""
    mid = memory_id(memory)
    await b.client.delete_memory(mid)
    return dump({"forgotten": str(mid)})


async def history(b: Binding, *, memory: str, limit: int) -> str:
    """A memory's versions, oldest first: what changed, when, by whom, why."""
    page = await b.client.list_versions(memory_id(memory), limit=limit)
    versions: list[JSON] = []
    for v in page.items:
        item: JSON = {
            "version": v.version,
            "change": v.change_kind,
            "content": v.content,
            "when": when(v.created_at),
            "by": v.actor,
        }
        if v.reason:
            item["why"] = v.reason
        if v.caused_by:
            item["caused_by"] = str(v.caused_by)
        versions.append(item)
    return dump({"memory": memory, "versions": versions})


Relation = Literal[
    "related",
    "elaborates",
    "supports",
    "contradicts",
    "supersedes",
    "same_entity",
    "causes",
    "part_of",
    "follows",
]


async def link(
    b: Binding, *, source: str, target: str, relation: Relation, reason: str | None
) -> str:
    """Link two memories of one cube: ``source <relation> target``."""
    try:
        made = await b.client.create_link(
            LinkCreate(
                source_id=memory_id(source),
                target_id=memory_id(target),
                relation=relation,
                reason=None if reason is None else clean(reason, "reason", 2000),
            )
        )
    except ValueError as exc:
        raise ToolFailure(f"invalid link: {exc}") from None
    return dump(
        {"link": str(made.id), "source": source, "relation": made.relation, "target": target}
    )


async def neighbours(b: Binding, *, memory: str, limit: int) -> str:
    """Memories linked to ``memory``, with the relation, its direction and the reason."""
    mid = memory_id(memory)
    page = await b.client.list_links(mid, limit=limit)
    out: list[JSON] = []
    for edge in page.items:
        outgoing = edge.source_id == mid
        other = edge.target_id if outgoing else edge.source_id
        try:
            neighbour = await b.client.get_memory(other)
        except NotFound:
            continue
        item = compact(neighbour)
        item["relation"] = edge.relation
        item["direction"] = "out" if outgoing else "in"
        if edge.reason:
            item["why"] = edge.reason
        out.append(item)
    return dump({"memory": str(mid), "neighbours": out})


async def recent(b: Binding, *, cube: str | None, core: bool, limit: int) -> str:
    """The newest memories of a cube (its core layer only with ``core``), newest first."""
    cube_id = await b.cube_id(cube)
    # The listing is oldest first (keyset on created_at, id): keep the tail.
    newest: deque[MemoryRead] = deque(maxlen=limit)
    pages = (
        b.client.iter_memories(cube_id, page_size=500, layer="core")
        if core
        else b.client.iter_memories(cube_id, page_size=500)
    )
    async for memory in pages:
        newest.append(memory)
    return dump({"cube": str(cube_id), "memories": [compact(m) for m in reversed(newest)]})
