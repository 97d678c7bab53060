"""``ingest``: conversation messages through a write policy (after Mem-alpha).

1. Every message is stored as a source (the veridical layer: nothing said is lost, whatever
   the policy decides).
2. Each is embedded once (as it would be indexed alone) and the cube's nearest memories are
   found for all of them in one statement; with the thread's last stored memory that is
   what the policy sees (``memsvc.policy.decide.Situation``).
3. The policy decides each thread's messages (one ``Batch`` per session), one ``Decision``
   per message.
4. The decisions are applied: new memories (a merge within the request joins the memory
   of an earlier message before it is written), new versions of existing ones (update,
   merge into the last stored memory, delete as a tombstone), lines of the scope's core
   block; each resulting version names its messages as sources.
5. Every decision is recorded (``write_decision``) with the version it produced.

All in the request's transaction: a failure leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.config import Settings
from memsvc.llm import LLM, LLMError, Usage
from memsvc.policy import learned, policies, writes
from memsvc.policy.decide import Batch, Decision, Message, Neighbour, PolicyLayer, Situation
from memsvc.runtime import ModelRuntime
from memsvc.schemas import MemoryBatchCreate, MemoryCreate, MemoryRead, MemoryUpdate
from memsvc.schemas.decisions import DecisionRead
from memsvc.schemas.ingest import IngestAccepted, IngestRequest, IngestResponse
from memsvc.schemas.memories import SourceCreate
from memsvc.store import cubes, idempotency, indexing, passages
from memsvc.store import ingest as store
from memsvc.store import memories as memstore
from memsvc.store.cubes import CubeRef
from memsvc.store.indexing import build_index_text
from memsvc.store.tenants import Principal
from memsvc.store.versions import Change

log = logging.getLogger("memsvc.ingest")

# The kinds of the memories a policy writes, by layer.
KIND_OF_LAYER = {"episodic": "event", "semantic": "fact", "core": store.CORE_KIND}


def check_limits(body: IngestRequest, settings: Settings) -> None:
    """Refuse (413) messages over the content limit and requests over the batch limit,
    before anything is written."""
    writes.check_sizes("messages", [m.content for m in body.messages], settings.limits)


def request_hash(cube_id: uuid.UUID, body: IngestRequest) -> str:
    """Fingerprint of an ingest request, to tell a retry from a reused key."""
    raw = f"ingest|{cube_id}|{body.model_dump_json(by_alias=True)}"
    return hashlib.sha256(raw.encode()).hexdigest()


async def _claim(
    session: AsyncSession,
    principal: Principal,
    cube: CubeRef,
    body: IngestRequest,
    key: str | None,
) -> idempotency.Replay | None:
    """The answer to replay for a retried ``Idempotency-Key`` (None: first time, or none)."""
    if key is None:
        return None
    return await idempotency.claim(
        session, tenant_id=principal.tenant_id, key=key, request_hash=request_hash(cube.id, body)
    )


def policy_name(body: IngestRequest, cube: CubeRef, settings: Settings) -> str:
    return body.policy or cube.write_policy or settings.ingest.default_policy


@dataclass
class _Group:
    """A memory to write: new (``target`` None) or a new version of ``target``."""

    messages: list[int]
    content: list[str]
    layer: PolicyLayer
    target: uuid.UUID | None = None
    valid_from: datetime | None = None
    delete: bool = False
    # The policy wrote the group's whole text on its first message (an LLM's rewrite):
    # messages merged into it add their sources, not their words again.
    rewritten: bool = False


_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def rewrite_core(current: str, block: str, cap: int) -> str | None:
    """The core block replaced by ``block`` (None: the same), its lines kept, the newest
    ones when it is over ``cap`` characters."""
    lines = [" ".join(ln.split()) for ln in block.splitlines() if ln.strip()]
    while len("\n".join(lines)) > cap and len(lines) > 1:
        lines.pop(0)
    text = "\n".join(lines)[:cap]
    return None if not text or text == current else text


def fold_core(current: str, line: str, cap: int) -> str | None:
    """The core block with ``line`` added (None: it says nothing new). A line on the same
    subject as an older one replaces it (most of its words shared); past ``cap`` characters
    the oldest lines go first."""
    line = " ".join(line.split())[:cap]
    lines = [ln for ln in current.splitlines() if ln.strip()]
    new = _words(line)
    if not new or any(_words(ln) == new for ln in lines):
        return None
    kept = []
    for ln in lines:
        old = _words(ln)
        if old and len(old & new) / len(old | new) >= 0.6:
            continue  # superseded: the same statement with something changed
        kept.append(ln)
    kept.append(line)
    while len("\n".join(kept)) > cap and len(kept) > 1:
        kept.pop(0)
    return "\n".join(kept)


def _message_source(m: Message) -> SourceCreate:
    return SourceCreate(
        kind="message",
        external_id=m.external_id,
        speaker=m.speaker,
        occurred_at=m.timestamp,
        text=m.content,
        metadata={"role": m.role, **({"session_id": m.session_id} if m.session_id else {})},
    )


def _neighbour(mem: Any, similarity: float) -> Neighbour:
    return Neighbour(
        id=mem.id,
        content=mem.content,
        layer=mem.layer,
        kind=mem.kind,
        similarity=similarity,
        session_id=mem.session_id,
        occurred_at=mem.occurred_at,
        version=mem.version,
    )


# A memory merged from several messages is embedded as the normalised mean of its messages'
# embeddings (each computed once already, for the policy's features), never once more as
# one text: its messages' own vectors are its passages (``_message_passages``), which is
# what the vector channel finds it by. bench/policies.py, learned, pooled vs the short ones
# (under 150 words) embedded as one text: LoCoMo dev recall@10 0.7476 vs 0.7372, ingest 34.6
# vs 17.6 msg/s (store_all 31.4 / 26.4 in those sittings); LongMemEval (6 questions) 0.4222
# both, 6.4 vs 4.3 msg/s (store_all 4.6).


def _pooled(g: _Group, messages: Sequence[Message], vectors: Sequence[np.ndarray]) -> Any:
    """The embedding of a new memory from its messages' (None: embed its text): a single
    message's own, or the pooled one of several; never for a text the policy rewrote."""
    if not _said_as_is(g, messages):
        return None
    if len(g.messages) == 1:
        return vectors[g.messages[0]]
    mean = np.mean([vectors[i] for i in g.messages], axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def _said_as_is(g: _Group, messages: Sequence[Message]) -> bool:
    """Whether the group's text is its messages' words, unchanged (not an LLM's rewrite)."""
    return not g.rewritten and [c.strip() for c in g.content] == [
        messages[i].content.strip() for i in g.messages
    ]


def _message_passages(
    messages: Sequence[Message],
    vectors: Sequence[np.ndarray],
    folded: Sequence[int],
    kept: Sequence[np.ndarray] = (),
) -> writes.Passages:
    """The passages of a memory folded from several messages: the vectors it had already
    (``kept``), then each message's as it would be indexed alone, its own embedding (computed
    once already, for the policy's features), its text windows and its sentences. The
    vector channel scores a memory by its best vector, so the memory is found as well as the
    best of its messages would be alone, whatever its own embedding of the whole says."""
    own = [*kept, *(vectors[i] for i in folded)][: indexing.MAX_PASSAGES]
    windows = [
        p for i in folded for p in indexing.passages(messages[i].content, [messages[i].speaker])
    ]
    return writes.Passages(vectors=own, texts=windows[: indexing.MAX_PASSAGES - len(own)])


def _layer_of(mem: Any) -> PolicyLayer:
    return cast(PolicyLayer, mem.layer)


def _joined(g: _Group, messages: Sequence[Message]) -> str:
    """A memory's content from its messages: one line each, named by speaker when more
    than one spoke."""
    if g.rewritten or len({messages[i].speaker for i in g.messages}) <= 1:
        return "\n".join(g.content)
    return "\n".join(
        f"{messages[i].speaker}: {t}" for i, t in zip(g.messages, g.content, strict=True)
    )


async def ingest(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    llm: LLM | None,
    settings: Settings,
    principal: Principal,
    cube: CubeRef,
    body: IngestRequest,
    idempotency_key: str | None,
    ingest_id: uuid.UUID | None = None,
    fallback: bool = True,
    usage: Usage | None = None,
) -> IngestResponse:
    """Run a request through its policy and apply the decisions (see the module doc).

    With ``fallback`` an LLM policy that fails (unavailable, or output still invalid after
    its repair call) hands the request to ``learned``, said in ``warnings`` and in every
    decision's reason; without it (the queued path) the error is raised, so the job retries
    and is parked as a dead letter."""
    check_limits(body, settings)
    replay = await _claim(session, principal, cube, body, idempotency_key)
    if replay is not None:
        return IngestResponse.model_validate(replay.body)
    ingest_id = ingest_id or uuid.uuid4()
    tenant_id = principal.tenant_id
    usage = usage if usage is not None else Usage()
    chosen = await policies.resolve(
        session,
        name=policy_name(body, cube, settings),
        tenant_id=tenant_id,
        llm=llm,
        settings=settings.ingest,
        usage=usage,
    )
    messages = [
        Message(
            index=i,
            role=m.role,
            content=m.content,
            name=m.name,
            timestamp=m.timestamp,
            session_id=m.session_id,
            external_id=m.external_id,
        )
        for i, m in enumerate(body.messages)
    ]
    # 1. Sources.
    srcs = [_message_source(m) for m in messages]
    source_ids = [uuid.uuid4() for _ in messages]
    # Distinct times in request order: a memory's sources list in the order they were said.
    now = datetime.now(UTC)
    await store.add_sources(
        session,
        [
            {
                **s.model_dump(exclude={"metadata"}),
                "metadata": s.metadata,
                "id": sid,
                "tenant_id": tenant_id,
                "cube_id": cube.id,
                "created_at": now + timedelta(microseconds=i),
            }
            for i, (s, sid) in enumerate(zip(srcs, source_ids, strict=True))
        ],
    )
    # 2. Embeddings (each message as it is indexed alone) and neighbours.
    own = [build_index_text(m.content, sources=[s]) for m, s in zip(messages, srcs, strict=True)]
    vectors = list(await runtime.embed(own))
    ranked = await store.nearest(
        session,
        tenant_id=tenant_id,
        cube_id=cube.id,
        vectors=vectors,
        k=settings.ingest.neighbours,
    )
    threads: dict[str | None, list[int]] = {}
    for m in messages:
        threads.setdefault(m.session_id, []).append(m.index)
    tails = {
        sid: await store.thread_tail(session, tenant_id=tenant_id, cube_id=cube.id, session_id=sid)
        for sid in threads
        if sid is not None
    }
    rows = await store.memories_by_id(
        session,
        tenant_id=tenant_id,
        ids=[mid for r in ranked for mid, _ in r] + [t.last.id for t in tails.values() if t.last],
    )
    core_row = await store.core_block(
        session, tenant_id=tenant_id, cube_id=cube.id, user_id=body.user_id, agent_id=body.agent_id
    )
    # 3. Decisions, thread by thread.
    decided: dict[int, Decision] = {}
    warnings: list[str] = []
    for sid, idxs in threads.items():
        tail = tails[sid] if sid is not None else store.Tail()
        last, held, count = tail.last, tail.held, tail.count
        sides = {side: (_neighbour(m, 1.0), n) for side, (m, n) in tail.sides.items()}
        situations = [
            Situation(
                message=messages[i],
                embedding=vectors[i],
                neighbours=[_neighbour(rows[mid], sim) for mid, sim in ranked[i] if mid in rows],
                position=count + n,
                last_memory=_neighbour(last, 1.0) if last is not None and n == 0 else None,
                last_memory_messages=held if n == 0 else 0,
                side_memories=sides if n == 0 else {},
            )
            for n, i in enumerate(idxs)
        ]
        batch = Batch(
            situations=situations,
            user_id=body.user_id,
            agent_id=body.agent_id,
            core=core_row.content if core_row is not None else "",
        )
        try:
            out = await chosen.policy.decide(batch)
        except LLMError as exc:
            if not fallback or chosen.policy.name != "llm":
                raise
            note = f"llm policy failed ({exc.code}: {exc}); the learned policy decided"
            log.warning("ingest_llm_fallback", extra={"code": exc.code})
            warnings.append(note)
            out = await learned.LearnedPolicy(learned.packaged()).decide(batch)
            for d in out:
                d.reason = f"{note}. {d.reason}"
        if len(out) != len(idxs):
            raise RuntimeError(f"policy {chosen.policy.name} returned {len(out)} decisions")
        prev: Situation | None = None
        for s, d in zip(situations, out, strict=True):
            if not d.features:
                d.features = learned.features(s, prev)
            prev = s
            decided[s.message.index] = d
    # 4. Apply.
    applied = await _apply(
        session,
        runtime=runtime,
        settings=settings,
        principal=principal,
        cube=cube,
        body=body,
        messages=messages,
        srcs=srcs,
        source_ids=source_ids,
        vectors=vectors,
        decided=decided,
        policy=f"{chosen.policy.name}@v{chosen.policy.version}",
        seen=rows,
    )
    # 5. Decisions.
    drows = []
    for m in messages:
        d = decided[m.index]
        out_id, out_version = applied.produced.get(m.index, (None, None))
        drows.append(
            {
                "tenant_id": tenant_id,
                "cube_id": cube.id,
                "ingest_id": ingest_id,
                "message_index": m.index,
                "source_id": source_ids[m.index],
                "policy": chosen.policy.name,
                "policy_version": chosen.policy.version,
                "operation": applied.operation.get(m.index, d.operation),
                "layer": applied.layer.get(m.index, d.layer),
                "memory_id": out_id,
                "memory_version": out_version,
                "target_id": applied.target.get(m.index, d.target_id),
                "reason": applied.reason.get(m.index, d.reason)[:4000],
                "score": None if d.score is None else float(d.score),
                "features": {k: float(v) for k, v in d.features.items()},
            }
        )
    ids = await store.record_decisions(session, drows)
    result = IngestResponse(
        ingest_id=ingest_id,
        policy=chosen.policy.name,
        policy_version=chosen.policy.version,
        decisions=[
            DecisionRead.model_validate({**r, "id": i}) for r, i in zip(drows, ids, strict=True)
        ],
        memories=list(applied.memories.values()),
        core=applied.core,
        llm_calls=usage.calls,
        warnings=warnings,
    )
    if idempotency_key is not None:
        await idempotency.record(
            session,
            tenant_id=tenant_id,
            key=idempotency_key,
            status_code=200,
            body=result.model_dump(mode="json"),
        )
    return result


@dataclass
class _Applied:
    # Message index -> (memory id, version) it went into.
    produced: dict[int, tuple[uuid.UUID, int]] = field(default_factory=dict)
    # What was done where it differs from the decision (a target that was not there).
    operation: dict[int, str] = field(default_factory=dict)
    layer: dict[int, str | None] = field(default_factory=dict)
    target: dict[int, uuid.UUID | None] = field(default_factory=dict)
    reason: dict[int, str] = field(default_factory=dict)
    memories: dict[uuid.UUID, MemoryRead] = field(default_factory=dict)
    core: MemoryRead | None = None


async def _apply(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    settings: Settings,
    principal: Principal,
    cube: CubeRef,
    body: IngestRequest,
    messages: Sequence[Message],
    srcs: Sequence[SourceCreate],
    source_ids: Sequence[uuid.UUID],
    vectors: Sequence[np.ndarray],
    decided: dict[int, Decision],
    policy: str,
    seen: dict[uuid.UUID, Any],
) -> _Applied:
    tenant_id = principal.tenant_id
    out = _Applied()
    # Targets are mostly the policy's neighbours or the thread's last memory, read already.
    wanted = {d.target_id for d in decided.values() if d.target_id is not None}
    targets = {mid: seen[mid] for mid in wanted if mid in seen}
    targets |= await store.memories_by_id(
        session, tenant_id=tenant_id, ids=[mid for mid in wanted if mid not in seen]
    )

    def live(mid: uuid.UUID | None) -> bool:
        mem = targets.get(mid) if mid is not None else None
        return mem is not None and mem.cube_id == cube.id and mem.status == "active"

    def redo(i: int, op: str, why: str) -> None:
        out.operation[i] = op
        out.reason[i] = f"{decided[i].reason} ({why})".strip()
        if op == "insert":
            out.target[i] = None

    new: list[_Group] = []
    group_of: dict[int, _Group] = {}
    stored: dict[uuid.UUID, _Group] = {}

    def on_stored(mid: uuid.UUID) -> _Group:
        """The new version of an existing memory the request writes (one per memory)."""
        if mid not in stored:
            stored[mid] = _Group([], [], _layer_of(targets[mid]), target=mid)
        return stored[mid]

    core_lines: list[tuple[int, str, bool]] = []
    for m in messages:
        i, d = m.index, decided[m.index]
        text = (d.content or m.content).strip() or m.content
        op = d.operation
        if op == "merge":
            joined = group_of.get(d.target_message) if d.target_message is not None else None
            if joined is not None and joined.target is None and not joined.delete:
                joined.messages.append(i)
                if not joined.rewritten:
                    joined.content.append(m.content)
                group_of[i] = joined
                out.layer[i] = joined.layer
                continue
            if d.target_id is not None and live(d.target_id):
                g = on_stored(d.target_id)
                g.messages.append(i)
                g.content.append(m.content)
                group_of[i] = g
                continue
            redo(i, "insert", "nothing to merge into: inserted")
            op = "insert"
        core_rewrite = op == "update" and d.layer == "core" and d.target_id is None
        if op in ("update", "delete") and not core_rewrite and not live(d.target_id):
            redo(i, "insert" if op == "update" else "skip", f"{op} target not found")
            op = "insert" if op == "update" else "skip"
        if op == "skip":
            continue
        if op == "delete":
            assert d.target_id is not None
            g = on_stored(d.target_id)
            g.delete = True
            g.messages.append(i)
            continue
        layer = d.layer or "episodic"
        if layer == "core":
            # An update of the core layer that names no memory rewrites the whole block.
            core_lines.append((i, text, op == "update" and d.target_id is None))
            out.layer[i] = "core"
            continue
        if op == "update":
            assert d.target_id is not None
            g = on_stored(d.target_id)
            g.content = [text]  # the changed fact replaces the old statement
            g.messages.append(i)
            g.valid_from = m.timestamp
            group_of[i] = g
            continue
        g = _Group([i], [text], layer, rewritten=text != m.content.strip())
        new.append(g)
        group_of[i] = g

    # New memories: one create call (batched embedding; a single message's vector known).
    if new:
        batch = MemoryBatchCreate(
            memories=[
                MemoryCreate(
                    content=_joined(g, messages),
                    kind=KIND_OF_LAYER.get(g.layer, "fact"),
                    layer=g.layer,
                    user_id=body.user_id,
                    agent_id=body.agent_id,
                    session_id=messages[g.messages[0]].session_id,
                    sources=[srcs[i] for i in g.messages],
                )
                for g in new
            ]
        )
        known = {
            j: v for j, g in enumerate(new) if (v := _pooled(g, messages, vectors)) is not None
        }
        folded = {
            j: _message_passages(messages, vectors, g.messages)
            for j, g in enumerate(new)
            if len(g.messages) > 1 and _said_as_is(g, messages)
        }
        created = await writes.create_memories(
            session,
            runtime=runtime,
            limits=settings.limits,
            principal=principal,
            cube_id=cube.id,
            batch=batch,
            idempotency_key=None,
            max_attempts=settings.jobs.max_attempts,
            fold_delay_s=settings.ann_fold_delay_s,
            change=Change(actor=principal.actor, change_kind="create", policy=policy),
            source_ids=[[source_ids[i] for i in g.messages] for g in new],
            known=known,
            passages_of=folded,
        )
        for g, read in zip(new, created.items, strict=True):
            out.memories[read.id] = read
            for i in g.messages:
                out.produced[i] = (read.id, read.version)

    # New versions of existing memories.
    for mid, g in stored.items():
        mem = targets[mid]
        change = Change(
            actor=principal.actor,
            change_kind="delete" if g.delete else "update",
            reason="; ".join(decided[i].reason for i in g.messages)[:2000] or None,
            policy=policy,
        )
        if g.delete:
            read = await memstore.set_status(
                session, tenant_id=tenant_id, memory_id=mid, status="deleted", change=change
            )
        else:
            merged = [i for i in g.messages if decided[i].operation == "merge"]
            appended = bool(merged) and len(merged) == len(g.messages)
            content = "\n".join(([mem.content] if appended else []) + g.content)
            data = MemoryUpdate(
                expected_version=mem.version,
                content=content,
                **({"valid_from": g.valid_from} if g.valid_from is not None else {}),
            )
            # Messages appended to it: the vectors it had stay, theirs join them.
            kept = await passages.stored_vectors(session, mid) if appended else []
            read = await writes.update_memory(
                session,
                runtime=runtime,
                limits=settings.limits,
                principal=principal,
                memory_id=mid,
                data=data,
                change=change,
                passages_from=_message_passages(messages, vectors, g.messages, kept)
                if appended
                else None,
            )
        await store.link_sources(
            session,
            tenant_id=tenant_id,
            memory_id=mid,
            version=read.version,
            source_ids=[source_ids[i] for i in g.messages],
        )
        out.memories[mid] = await _reread(session, tenant_id, mid)
        for i in g.messages:
            out.produced[i] = (mid, read.version)

    # The core block: a new version per request that changes it.
    if core_lines:
        out.core = await _write_core(
            session,
            runtime=runtime,
            settings=settings,
            principal=principal,
            cube=cube,
            body=body,
            lines=core_lines,
            srcs=srcs,
            source_ids=source_ids,
            policy=policy,
            out=out,
        )
    return out


async def _reread(session: AsyncSession, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> MemoryRead:
    """A memory as it stands now, with the sources just linked to it."""
    mem = await memstore.load(session, tenant_id=tenant_id, memory_id=memory_id)
    return (await memstore.read_many(session, [mem]))[0]


async def _write_core(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    settings: Settings,
    principal: Principal,
    cube: CubeRef,
    body: IngestRequest,
    lines: Sequence[tuple[int, str, bool]],
    srcs: Sequence[SourceCreate],
    source_ids: Sequence[uuid.UUID],
    policy: str,
    out: _Applied,
) -> MemoryRead | None:
    tenant_id = principal.tenant_id
    cap = settings.ingest.core_max_chars
    await store.lock_core(session, cube_id=cube.id, user_id=body.user_id, agent_id=body.agent_id)
    row = await store.core_block(
        session, tenant_id=tenant_id, cube_id=cube.id, user_id=body.user_id, agent_id=body.agent_id
    )
    text = row.content if row is not None else ""
    used: list[int] = []
    for i, line, rewrite in lines:
        folded = rewrite_core(text, line, cap) if rewrite else fold_core(text, line, cap)
        if folded is None:
            out.operation[i] = "skip"
            out.reason[i] = "core: already in the core block"
            continue
        text = folded
        used.append(i)
    if not used:
        return None
    change = Change(
        actor=principal.actor,
        change_kind="update" if row is not None else "create",
        reason="core block: " + "; ".join(line for _, line, _ in lines)[:1000],
        policy=policy,
    )
    if row is None:
        created = await writes.create_memories(
            session,
            runtime=runtime,
            limits=settings.limits,
            principal=principal,
            cube_id=cube.id,
            batch=MemoryBatchCreate(
                memories=[
                    MemoryCreate(
                        content=text,
                        kind=store.CORE_KIND,
                        layer="core",
                        user_id=body.user_id,
                        agent_id=body.agent_id,
                        importance=1.0,
                        sources=[srcs[i] for i in used],
                    )
                ],
                enrich=False,
            ),
            idempotency_key=None,
            change=change,
            source_ids=[[source_ids[i] for i in used]],
        )
        read = created.items[0]
    else:
        updated = await writes.update_memory(
            session,
            runtime=runtime,
            limits=settings.limits,
            principal=principal,
            memory_id=row.id,
            data=MemoryUpdate(expected_version=row.version, content=text),
            change=change,
        )
        await store.link_sources(
            session,
            tenant_id=tenant_id,
            memory_id=row.id,
            version=updated.version,
            source_ids=[source_ids[i] for i in used],
        )
        read = await _reread(session, tenant_id, row.id)
    for i in used:
        out.produced[i] = (read.id, read.version)
        out.operation.setdefault(i, "update" if row is not None else "insert")
        out.target[i] = row.id if row is not None else None
    return read


JOB_KIND = "ingest"


async def enqueue(
    session: AsyncSession,
    *,
    settings: Settings,
    llm: LLM | None,
    principal: Principal,
    cube: CubeRef,
    body: IngestRequest,
    idempotency_key: str | None,
) -> IngestAccepted:
    """Queue the request (``"async": true``): answered at once, run by a worker, its result
    on the job (``GET /v1/jobs/{id}``) and its decisions under its ``ingest_id``. The
    policy is checked now (an ``llm`` policy with no LLM is a 422 here, not a dead job)."""
    check_limits(body, settings)
    replay = await _claim(session, principal, cube, body, idempotency_key)
    if replay is not None:
        return IngestAccepted.model_validate(replay.body)
    if policy_name(body, cube, settings) == "llm" and llm is None:
        await policies.resolve(
            session, name="llm", tenant_id=principal.tenant_id, llm=None, settings=settings.ingest
        )
    ingest_id = uuid.uuid4()
    job_id = await store.enqueue(
        session,
        tenant_id=principal.tenant_id,
        kind=JOB_KIND,
        payload={
            "ingest_id": str(ingest_id),
            "cube_id": str(cube.id),
            "key_id": str(principal.key_id),
            "role": principal.role,
            "body": body.model_dump(mode="json", by_alias=True),
        },
        max_attempts=settings.jobs.max_attempts,
    )
    accepted = IngestAccepted(ingest_id=ingest_id, job_id=job_id)
    if idempotency_key is not None:
        await idempotency.record(
            session,
            tenant_id=principal.tenant_id,
            key=idempotency_key,
            status_code=202,
            body=accepted.model_dump(mode="json"),
        )
    return accepted


async def run_queued(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    llm: LLM | None,
    settings: Settings,
    tenant_id: uuid.UUID,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """Run a queued request (the ``ingest`` job). Run again after a crash it does nothing
    twice: a request whose decisions are stored already answers from them."""
    ingest_id = uuid.UUID(str(payload["ingest_id"]))
    done = await store.decision_counts(session, tenant_id=tenant_id, ingest_id=ingest_id)
    if done:
        return {"ingest_id": str(ingest_id), "operations": done, "replayed": True}
    principal = Principal(
        tenant_id=tenant_id,
        key_id=uuid.UUID(str(payload["key_id"])),
        role=payload.get("role", "member"),
    )
    cube = await cubes.require(session, tenant_id=tenant_id, cube_id=uuid.UUID(payload["cube_id"]))
    body = IngestRequest.model_validate(payload["body"])
    result = await ingest(
        session,
        runtime=runtime,
        llm=llm,
        settings=settings,
        principal=principal,
        cube=cube,
        body=body,
        idempotency_key=None,
        ingest_id=ingest_id,
        fallback=False,
    )
    ops: dict[str, int] = {}
    for d in result.decisions:
        ops[d.operation] = ops.get(d.operation, 0) + 1
    return {
        "ingest_id": str(ingest_id),
        "policy": result.policy,
        "policy_version": result.policy_version,
        "operations": ops,
        "memory_ids": [str(m.id) for m in result.memories],
        "core_id": str(result.core.id) if result.core is not None else None,
    }
