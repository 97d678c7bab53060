"""The explicit write path: validate, embed (batched), store with versions and provenance."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.config import LimitSettings
from memsvc.errors import PayloadTooLarge, ValidationFailed
from memsvc.runtime import ModelRuntime, by_length
from memsvc.runtime.base import Vectors
from memsvc.schemas import MemoryBatchCreate, MemoryList, MemoryRead, MemoryUpdate
from memsvc.schemas.memories import SUMMARY_KIND, SourceCreate, check_memory
from memsvc.store import ann, context, cubes, edits, erasure, idempotency, indexing, passages
from memsvc.store import memories as store
from memsvc.store.indexing import CONTEXT_MARK, build_index_text, occurred_at, placed_text
from memsvc.store.tenants import Principal
from memsvc.store.versions import Change

# Memories embedded per model call on the write path (matches the runtime's batch size).
EMBED_CHUNK = 64


@dataclass(frozen=True)
class Passages:
    """A memory's passages when its writer knows them better than its content's text windows
    (``indexing.passages``): ``vectors`` computed already, then ``texts`` to embed (a merged
    memory's messages, see ``memsvc.policy.ingest``)."""

    vectors: Sequence[np.ndarray] = ()
    texts: Sequence[str] = ()


def _field_limit(field: str, size: int, limit: int, unit: str = "bytes") -> None:
    if size > limit:
        raise ValidationFailed(
            f"{field} is {size} {unit}; the limit is {limit}",
            code="field_too_large",
            detail={"field": field, "size": size, "limit": limit},
        )


def _json_bytes(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def check_fields(
    where: str,
    limits: LimitSettings,
    *,
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    sources: list[SourceCreate] | None = None,
) -> None:
    """Refuse (422) fields over the configured limits (``LimitSettings``)."""
    if metadata is not None:
        _field_limit(f"{where}.metadata", _json_bytes(metadata), limits.max_metadata_bytes)
    if tags is not None:
        _field_limit(f"{where}.tags", len(tags), limits.max_tags, "tags")
        for j, tag in enumerate(tags):
            _field_limit(f"{where}.tags[{j}]", len(tag), limits.max_tag_chars, "characters")
    for j, src in enumerate(sources or []):
        if src.text is not None:
            size = len(src.text.encode())
            _field_limit(f"{where}.sources[{j}].text", size, limits.max_source_text_bytes)
        _field_limit(
            f"{where}.sources[{j}].metadata", _json_bytes(src.metadata), limits.max_metadata_bytes
        )


def check_sizes(noun: str, contents: Sequence[str], limits: LimitSettings) -> None:
    """Refuse (413) a batch of more than ``max_batch`` items, or an item's content over
    ``max_content_bytes`` (``noun``: what the items are called in the request)."""
    if len(contents) > limits.max_batch:
        raise PayloadTooLarge(
            f"batch of {len(contents)} {noun} exceeds the limit of {limits.max_batch}",
            code="batch_too_large",
            detail={"limit": limits.max_batch},
        )
    for i, content in enumerate(contents):
        size = len(content.encode())
        if size > limits.max_content_bytes:
            raise PayloadTooLarge(
                f"{noun}[{i}].content is {size} bytes; the limit is {limits.max_content_bytes}",
                code="content_too_large",
                detail={"index": i, "bytes": size, "limit": limits.max_content_bytes},
            )


def check_limits(batch: MemoryBatchCreate, limits: LimitSettings) -> None:
    """Refuse oversized batches and contents (413) and fields (422) before any work is done."""
    check_sizes("memories", [m.content for m in batch.memories], limits)
    for i, m in enumerate(batch.memories):
        check_fields(f"memories[{i}]", limits, metadata=m.metadata, tags=m.tags, sources=m.sources)
        check_kind(f"memories[{i}].kind", m.kind)


def check_kind(where: str, kind: str | None) -> None:
    """Kind "summary" is the service's own (``memsvc.graph.layers``): 422 from a client."""
    if kind == SUMMARY_KIND:
        raise ValidationFailed(
            f'{where}: kind "{SUMMARY_KIND}" is reserved for the summaries the service writes',
            code="reserved_kind",
            detail={"field": where, "kind": kind},
        )


def request_hash(cube_id: uuid.UUID, batch: MemoryBatchCreate) -> str:
    """Fingerprint of a create request, to tell a retry from a reused key."""
    return hashlib.sha256(f"{cube_id}|{batch.model_dump_json()}".encode()).hexdigest()


async def create_memories(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    limits: LimitSettings,
    principal: Principal,
    cube_id: uuid.UUID,
    batch: MemoryBatchCreate,
    idempotency_key: str | None,
    max_attempts: int = 5,
    fold_delay_s: float = 10.0,
    change: Change | None = None,
    source_ids: Sequence[Sequence[uuid.UUID]] | None = None,
    known: Mapping[int, np.ndarray] | None = None,
    passages_of: Mapping[int, Passages] | None = None,
) -> MemoryList:
    """Create a batch atomically; a retried Idempotency-Key replays the first answer.

    In a cube promoted to the HNSW index, a bulk batch (``ann.DEFER_FROM`` or more) is
    written unflagged and folded into the index by a job ``fold_delay_s`` later; smaller
    ones go into the index as they are written (see ``memsvc.store.ann``).

    ``ingest`` (``memsvc.policy.ingest``) passes its ``change`` (policy and model), the ids
    of the sources it stored already (per memory, in ``sources`` order) and the embeddings
    it computed already (``known``, by batch index: the memory's own index text), and the
    passages of the memories it folded from several messages (``passages_of``, by batch
    index: in place of their text windows)."""
    check_limits(batch, limits)
    cube = await cubes.require(session, tenant_id=principal.tenant_id, cube_id=cube_id)
    if idempotency_key is not None:
        replay = await idempotency.claim(
            session,
            tenant_id=principal.tenant_id,
            key=idempotency_key,
            request_hash=request_hash(cube_id, batch),
        )
        if replay is not None:
            return MemoryList.model_validate(replay.body)
    # The embedding is of the memory itself; the full-text index of a short one also gets
    # the preceding turns of its thread, from the store as well as from this request, so how
    # a client splits its writes does not change what search finds (``memsvc.store.context``).
    # Embedding the context too measured no better on LoCoMo and costs ~2x embedder time.
    threads = [
        context.thread_of(
            session_id=m.session_id,
            occurred_at=occurred_at(m.sources),
            user_id=m.user_id,
            agent_id=m.agent_id,
        )
        for m in batch.memories
    ]
    stored = await context.stored_tails(
        session,
        tenant_id=principal.tenant_id,
        cube_id=cube_id,
        threads={t for t in threads if t is not None},
    )
    contexts = context.contexts(threads, [placed_text(m) for m in batch.memories], stored)
    own = [build_index_text(m.content, tags=m.tags, sources=m.sources) for m in batch.memories]
    texts = [
        build_index_text(
            m.content,
            tags=m.tags,
            sources=m.sources,
            context=ctx if indexing.takes_context(m.content) else (),
        )
        for m, ctx in zip(batch.memories, contexts, strict=True)
    ]
    # Long memories' later passages (``indexing.passages``) or the writer's own.
    passages_of = passages_of or {}
    later = [
        list(passages_of[i].texts)
        if i in passages_of
        else indexing.passages(m.content, (s.speaker for s in m.sources))
        for i, m in enumerate(batch.memories)
    ]
    plan = await _EmbedPlan.start(runtime, own, later, known or {})
    now = datetime.now(UTC)
    fold_later = cube.ann_indexed and len(own) >= ann.DEFER_FROM
    created: dict[int, MemoryRead] = {}
    try:
        async for ready in plan.memories():
            items = [
                store.NewMemory(
                    data=batch.memories[i],
                    index_text=texts[i],
                    embedding=v,
                    created_at=now + timedelta(microseconds=i),
                    source_ids=None if source_ids is None else source_ids[i],
                )
                for i, v in ready
            ]
            reads = await store.create_many(
                session,
                tenant_id=principal.tenant_id,
                cube_id=cube_id,
                items=items,
                change=change
                or Change(actor=principal.actor, change_kind="create", policy="explicit"),
                embedding_model=runtime.embedder.model_name,
                max_attempts=max_attempts,
                enqueue_enrichment=batch.enrich,
                ann=cube.ann_indexed and not fold_later,
            )
            for (i, _), read in zip(ready, reads, strict=True):
                created[i] = read
        await passages.write_vectors(
            session,
            tenant_id=principal.tenant_id,
            cube_id=cube_id,
            vectors=[
                (
                    created[i].id,
                    [*(passages_of[i].vectors if i in passages_of else ()), *plan.passages(i)],
                )
                for i in range(len(later))
            ],
        )
    finally:
        plan.cancel()
    if fold_later:
        await ann.schedule_fold(
            session, tenant_id=principal.tenant_id, cube_id=cube_id, delay_s=fold_delay_s
        )
    result = MemoryList(items=[created[i] for i in range(len(own))])
    if idempotency_key is not None:
        await idempotency.record(
            session,
            tenant_id=principal.tenant_id,
            key=idempotency_key,
            status_code=201,
            body=result.model_dump(mode="json"),
        )
    return result


class _EmbedPlan:
    """What a batch embeds: each memory's own text (unless ``known``) and its later passages,
    all in one list sorted by length and queued at once in chunks of ``EMBED_CHUNK``
    (``runtime.by_length``).

    One list: queued apart, a request's passages went after its texts and the batcher (which
    cuts model batches in arrival order) padded short texts to passages' length. bench/load.py
    --lme --batch 100 (1,000 LongMemEval turns, 703 passages): padded tokens 431k apart, 343k
    in one list, 321k sorted by tokens rather than characters (``runtime.lengths``), 302k for
    the raw embedder's one call sorted by characters (251k unpadded). The embedder is 99.5%
    of the requests' time (SQL ~1%, overlapped). Queued at once, so while the model works on
    chunk i+1 (its own thread) the memories of chunk i are written to Postgres (another
    process). Each row goes back to its text's place."""

    def __init__(
        self,
        slots: list[tuple[int, int]],
        chunks: list[list[int]],
        pending: Sequence[asyncio.Future[Vectors]],
        known: Mapping[int, np.ndarray],
        counts: list[int],
    ) -> None:
        self._slots, self._chunks, self._pending = slots, chunks, pending
        self._known = known
        self._counts = counts
        self._later: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    async def start(
        cls,
        runtime: ModelRuntime,
        own: Sequence[str],
        later: Sequence[Sequence[str]],
        known: Mapping[int, np.ndarray],
    ) -> _EmbedPlan:
        """Queue the batch's texts: sorted by tokens (``runtime.lengths``) when there is more
        than one chunk to cut."""
        # (memory, -1) is a memory's own text, (memory, j) its passage j.
        slots = [(i, -1) for i in range(len(own)) if i not in known]
        slots += [(i, j) for i, ps in enumerate(later) for j in range(len(ps))]
        texts = [own[i] if j < 0 else later[i][j] for i, j in slots]
        if len(texts) > EMBED_CHUNK:
            lengths = await runtime.lengths(texts)
        else:
            lengths = [0] * len(texts)  # one chunk: its order is the embedder's business
        chunks = by_length(lengths, EMBED_CHUNK)
        pending = [asyncio.ensure_future(runtime.embed([texts[k] for k in c])) for c in chunks]
        return cls(slots, chunks, pending, known, [len(ps) for ps in later])

    async def memories(self) -> AsyncIterator[list[tuple[int, np.ndarray]]]:
        """(memory index, own vector) groups as their chunks come back, ``known`` first;
        passage vectors are kept for ``passages``."""
        if self._known:
            yield [(i, np.asarray(v, dtype=np.float32)) for i, v in self._known.items()]
        for chunk, fut in zip(self._chunks, self._pending, strict=True):
            ready = []
            for k, v in zip(chunk, await fut, strict=True):
                i, j = self._slots[k]
                if j < 0:
                    ready.append((i, v))
                else:
                    self._later[i, j] = v
            if ready:
                yield ready

    def passages(self, i: int) -> list[np.ndarray]:
        """Memory ``i``'s passage vectors, in order (after ``memories`` is exhausted)."""
        return [self._later[i, j] for j in range(self._counts[i])]

    def cancel(self) -> None:
        for fut in self._pending:
            fut.cancel()


def check_merged(current: MemoryRead, data: MemoryUpdate) -> None:
    """The memory an edit writes (its fields over the locked latest version) passes the
    same ``check_memory`` as a created one; else 422."""
    sent = data.model_fields_set
    content = data.content if data.content is not None else current.content
    valid_from = data.valid_from if "valid_from" in sent else current.valid_from
    valid_to = data.valid_to if "valid_to" in sent else current.valid_to
    try:
        check_memory(content, valid_from, valid_to)
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="validation_error") from exc


async def update_memory(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    limits: LimitSettings,
    principal: Principal,
    memory_id: uuid.UUID,
    data: MemoryUpdate,
    change: Change | None = None,
    passages_from: Passages | None = None,
) -> MemoryRead:
    """Apply a change as a new version, rebased over the system's versions since the one it
    expected (else 409, see ``memsvc.store.edits``); re-embed when what it is indexed by changed.
    A new content's passages are its text windows, or ``passages_from`` (``ingest`` merging
    messages into a stored memory)."""
    if data.content is not None and len(data.content.encode()) > limits.max_content_bytes:
        raise PayloadTooLarge(
            f"content exceeds {limits.max_content_bytes} bytes", code="content_too_large"
        )
    check_fields("body", limits, metadata=data.metadata, tags=data.tags)
    check_kind("body.kind", data.kind)
    edit = await edits.begin(session, tenant_id=principal.tenant_id, memory_id=memory_id, data=data)
    current = edit.memory
    check_merged(current, data)
    index_text = vec = None
    if data.content is not None or data.tags is not None:
        # Built from the locked latest state: a rebased edit keeps the tags enrichment added.
        index_text = build_index_text(
            data.content if data.content is not None else current.content,
            tags=data.tags if data.tags is not None else current.tags,
            sources=current.sources,
        )
        # The memory and, when its content changes, its passages: one embedding call.
        later: Sequence[str] = []
        if data.content is not None:
            later = (
                passages_from.texts
                if passages_from is not None
                else indexing.passages(data.content, (s.speaker for s in current.sources))
            )
        vec, *vecs = await runtime.embed([index_text, *later])
        if data.content is not None:
            await passages.drop(session, memory_id)
            known = passages_from.vectors if passages_from is not None else ()
            await passages.write_vectors(
                session,
                tenant_id=principal.tenant_id,
                cube_id=current.cube_id,
                vectors=[(memory_id, [*known, *vecs])],
            )
        # The turns said before it are unchanged by an edit of the memory itself; one edited
        # past ``CONTEXT_UP_TO`` words drops them (one written long has none to keep).
        _, mark, ctx = edit.index_text.partition(CONTEXT_MARK)
        if indexing.takes_context(data.content if data.content is not None else current.content):
            index_text += mark + ctx
    return await store.update_memory(
        session,
        tenant_id=principal.tenant_id,
        memory_id=memory_id,
        data=data,
        change=change or Change(actor=principal.actor, change_kind="update", reason=data.reason),
        version=current.version,
        rebased_over=edit.rebased_over,
        index_text=index_text,
        embedding=vec,
        embedding_model=runtime.embedder.model_name,
    )


async def delete_memory(
    session: AsyncSession, *, principal: Principal, memory_id: uuid.UUID, hard: bool = False
) -> None:
    """Soft delete as a new version (restorable), or with ``hard`` erase the content
    everywhere (audited, see ``memsvc.store.erasure``)."""
    if hard:
        await erasure.erase(
            session, tenant_id=principal.tenant_id, memory_id=memory_id, actor=principal.actor
        )
        return
    await _set_status(session, principal=principal, memory_id=memory_id, status="deleted")


async def restore_memory(
    session: AsyncSession, *, principal: Principal, memory_id: uuid.UUID
) -> MemoryRead:
    """Undo a soft delete, as a new version."""
    return await _set_status(session, principal=principal, memory_id=memory_id, status="active")


async def _set_status(
    session: AsyncSession, *, principal: Principal, memory_id: uuid.UUID, status: str
) -> MemoryRead:
    kind = "delete" if status == "deleted" else "restore"
    return await store.set_status(
        session,
        tenant_id=principal.tenant_id,
        memory_id=memory_id,
        status=status,
        change=Change(actor=principal.actor, change_kind=kind),
    )
