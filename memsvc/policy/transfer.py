"""Cube export (streamed JSON lines) and import (JSON lines, one transaction per request).

An import request is all or nothing: every line is parsed and checked (schema, limits,
references) before anything is written, and a bad line is a 4xx naming its line number
with nothing written. Across requests (``memsvc import`` sends a file in chunks) what
earlier requests wrote stays: ids are derived from the target cube and the exported id
(``store.transfer.new_id``), so re-sending a chunk after an interruption writes nothing twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.config import LimitSettings
from memsvc.errors import BadRequest, PayloadTooLarge, ValidationFailed
from memsvc.policy.writes import check_fields
from memsvc.runtime import ModelRuntime
from memsvc.schemas import CubeRead
from memsvc.schemas.transfer import (
    CubeInfo,
    EndRecord,
    HeaderRecord,
    ImportResult,
    LinkRecord,
    MemoryRecord,
    Record,
    SourceRecord,
)
from memsvc.store import ann, indexing, passages, summaries, transfer
from memsvc.store.db import Database
from memsvc.store.jobs import enqueue_many
from memsvc.store.models import Memory

# Lines per import request, and bytes per line (a memory with its whole history is one).
MAX_LINES = 10_000
MAX_LINE_BYTES = 8 * 1024 * 1024

RECORD: TypeAdapter[Record] = TypeAdapter(Record)


# -- export -----------------------------------------------------------------------------


async def export_lines(
    db: Database, *, tenant_id: uuid.UUID, cube: CubeRead
) -> AsyncIterator[bytes]:
    """The cube as JSON lines: header, sources, memories, links, end (one snapshot)."""
    counts = {"sources": 0, "memories": 0, "versions": 0, "links": 0}
    header = HeaderRecord(
        cube=CubeInfo(
            id=str(cube.id), name=cube.name, description=cube.description, metadata=cube.metadata
        ),
        exported_at=datetime.now(UTC),
    )
    yield _line(header)
    async with transfer.snapshot(db, tenant_id) as session:
        async for source in transfer.export_sources(session, tenant_id=tenant_id, cube_id=cube.id):
            counts["sources"] += 1
            yield _line(source)
        async for memory in transfer.export_memories(session, tenant_id=tenant_id, cube_id=cube.id):
            counts["memories"] += 1
            counts["versions"] += len(memory.versions)
            yield _line(memory)
        async for link in transfer.export_links(session, tenant_id=tenant_id, cube_id=cube.id):
            counts["links"] += 1
            yield _line(link)
    yield _line(EndRecord(counts=counts))


def _line(record: BaseModel) -> bytes:
    return record.model_dump_json().encode() + b"\n"


# -- import: parsing --------------------------------------------------------------------


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number this service stores")


def parse_lines(body: bytes) -> list[tuple[int, Record]]:
    """The records of an import body with their 1-based line numbers (blank lines skipped);
    a 4xx naming the first bad line otherwise."""
    lines = body.split(b"\n")
    if len([raw for raw in lines if raw.strip()]) > MAX_LINES:
        raise PayloadTooLarge(
            f"more than {MAX_LINES} lines in one import request: send the file in parts",
            code="batch_too_large",
            detail={"limit": MAX_LINES},
        )
    out: list[tuple[int, Record]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            raise PayloadTooLarge(
                f"line {number} is {len(raw)} bytes; the limit is {MAX_LINE_BYTES}",
                code="line_too_large",
                detail={"line": number, "bytes": len(raw), "limit": MAX_LINE_BYTES},
            )
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BadRequest(
                f"line {number} is not valid JSON: {type(exc).__name__}",
                code="invalid_json",
                detail={"line": number},
            ) from exc
        try:
            record = RECORD.validate_python(value)
        except ValidationError as exc:
            raise ValidationFailed(
                f"line {number} is not a valid export record",
                code="validation_error",
                detail={
                    "line": number,
                    "errors": exc.errors(
                        include_url=False, include_input=False, include_context=False
                    ),
                },
            ) from exc
        out.append((number, record))
    return out


def _check_memory_limits(number: int, rec: MemoryRecord, limits: LimitSettings) -> None:
    for text in [rec.content, *(v.content for v in rec.versions)]:
        size = len(text.encode())
        if size > limits.max_content_bytes:
            raise PayloadTooLarge(
                f"line {number}: content is {size} bytes; the limit is {limits.max_content_bytes}",
                code="content_too_large",
                detail={"line": number, "bytes": size, "limit": limits.max_content_bytes},
            )
    try:
        check_fields(f"line {number}", limits, metadata=rec.metadata, tags=rec.tags)
        for v in rec.versions:
            check_fields(f"line {number}", limits, metadata=v.metadata, tags=v.tags)
    except ValidationFailed as exc:
        exc.detail = {"line": number, **(exc.detail or {})}
        raise


# -- import: mapping and writing --------------------------------------------------------


class _Plan:
    """The rows of one request, with where each reference points."""

    def __init__(self, cube_id: uuid.UUID) -> None:
        self.cube_id = cube_id
        self.batch = transfer.ImportBatch()
        self.source_ids: set[uuid.UUID] = set()
        self.memory_ids: set[uuid.UUID] = set()
        # (line, what, id): references to check against this request and the cube.
        self.source_refs: list[tuple[int, uuid.UUID]] = []
        self.memory_refs: list[tuple[int, uuid.UUID]] = []
        self.to_embed: list[tuple[dict[str, Any], str]] = []
        self.pending: list[uuid.UUID] = []

    def map(self, exported: str) -> uuid.UUID:
        return transfer.new_id(self.cube_id, exported)


def _plan(
    cube_id: uuid.UUID,
    tenant_id: uuid.UUID,
    records: list[tuple[int, Record]],
    limits: LimitSettings,
    model_name: str,
) -> _Plan:
    plan = _Plan(cube_id)
    for number, rec in records:
        if isinstance(rec, SourceRecord):
            _plan_source(plan, tenant_id, rec)
        elif isinstance(rec, MemoryRecord):
            _check_memory_limits(number, rec, limits)
            _plan_memory(plan, tenant_id, number, rec, model_name)
        elif isinstance(rec, LinkRecord):
            _plan_link(plan, tenant_id, number, rec)
    return plan


def _plan_source(plan: _Plan, tenant_id: uuid.UUID, rec: SourceRecord) -> None:
    sid = plan.map(rec.id)
    plan.source_ids.add(sid)
    plan.batch.sources.append(
        {
            "id": sid,
            "tenant_id": tenant_id,
            "cube_id": plan.cube_id,
            "kind": rec.kind,
            "external_id": rec.external_id,
            "speaker": rec.speaker,
            "occurred_at": rec.occurred_at,
            "text": rec.text,
            "metadata_": rec.metadata,
            "created_at": rec.created_at,
        }
    )


def _plan_memory(
    plan: _Plan, tenant_id: uuid.UUID, number: int, rec: MemoryRecord, model_name: str
) -> None:
    mid = plan.map(rec.id)
    plan.memory_ids.add(mid)
    row: dict[str, Any] = {
        "id": mid,
        "tenant_id": tenant_id,
        "cube_id": plan.cube_id,
        "content": rec.content,
        "index_text": rec.index_text if rec.index_text is not None else rec.content,
        "kind": rec.kind,
        "layer": rec.layer,
        "tags": rec.tags,
        "keywords": rec.keywords,
        "context": rec.context,
        "metadata_": rec.metadata,
        "user_id": rec.user_id,
        "agent_id": rec.agent_id,
        "session_id": rec.session_id,
        "importance": rec.importance,
        "status": rec.status,
        "enrichment_status": rec.enrichment_status,
        "valid_from": rec.valid_from,
        "valid_to": rec.valid_to,
        "occurred_at": rec.occurred_at or rec.valid_from,
        "version": rec.version,
        "ann": False,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }
    vector = transfer.decode_vector(rec.embedding) if rec.embedding else None
    if vector is not None and rec.embedding_model == model_name:
        row["embedding"] = vector
    else:
        plan.to_embed.append((row, row["index_text"]))
    if rec.enrichment_status == "pending":
        plan.pending.append(mid)
    plan.batch.memories.append(row)
    for v in rec.versions:
        origin = {"system": rec.origin, "cube_id": rec.cube_id, "memory_id": rec.id}
        plan.batch.versions.append(
            {
                "tenant_id": tenant_id,
                "memory_id": mid,
                "version": v.version,
                "change_kind": v.change_kind,
                "content": v.content,
                "kind": v.kind,
                "layer": v.layer,
                "tags": v.tags,
                "keywords": v.keywords,
                "context": v.context,
                "metadata_": v.metadata,
                "user_id": v.user_id,
                "agent_id": v.agent_id,
                "session_id": v.session_id,
                "importance": v.importance,
                "status": v.status,
                "valid_from": v.valid_from,
                "valid_to": v.valid_to,
                "embedding_model": v.embedding_model,
                "embedding_hash": v.embedding_hash,
                "actor": v.actor,
                "reason": v.reason,
                "caused_by": plan.map(v.caused_by) if v.caused_by else None,
                "policy": v.policy,
                "model": v.model,
                "rebased_over": v.rebased_over or None,
                "imported_from": {**origin, "version": v.version},
                "created_at": v.created_at,
            }
        )
        for exported in v.sources:
            sid = plan.map(exported)
            plan.source_refs.append((number, sid))
            plan.batch.memory_sources.append(
                {"memory_id": mid, "version": v.version, "source_id": sid, "tenant_id": tenant_id}
            )


def _plan_link(plan: _Plan, tenant_id: uuid.UUID, number: int, rec: LinkRecord) -> None:
    source, target = plan.map(rec.source_id), plan.map(rec.target_id)
    plan.memory_refs += [(number, source), (number, target)]
    plan.batch.links.append(
        {
            "id": plan.map(rec.id),
            "tenant_id": tenant_id,
            "cube_id": plan.cube_id,
            "source_id": source,
            "target_id": target,
            "relation": rec.relation,
            "weight": rec.weight,
            "reason": rec.reason,
            "created_by": rec.created_by,
            "status": rec.status,
            "provenance": rec.provenance,
            "created_at": rec.created_at,
        }
    )


async def _check_references(session: AsyncSession, plan: _Plan) -> None:
    """Every source and memory a line names is in this request or already in the cube."""
    outside_s = {sid for _, sid in plan.source_refs if sid not in plan.source_ids}
    outside_m = {mid for _, mid in plan.memory_refs if mid not in plan.memory_ids}
    have_s, have_m = await transfer.existing(
        session, cube_id=plan.cube_id, sources=list(outside_s), memories=list(outside_m)
    )
    for refs, known, what in (
        (plan.source_refs, plan.source_ids | have_s, "source"),
        (plan.memory_refs, plan.memory_ids | have_m, "memory"),
    ):
        for number, ref in refs:
            if ref not in known:
                raise ValidationFailed(
                    f"line {number} names a {what} that is neither in this request nor "
                    "imported before (send the lines in the export's order)",
                    code="unknown_reference",
                    detail={"line": number, "kind": what},
                )


async def import_lines(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    limits: LimitSettings,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    ann_indexed: bool,
    records: list[tuple[int, Record]],
    max_attempts: int = 5,
    fold_delay_s: float = 10.0,
) -> ImportResult:
    """Write the records of one request in the caller's transaction (all or nothing)."""
    plan = _plan(cube_id, tenant_id, records, limits, runtime.embedder.model_name)
    await _check_references(session, plan)
    # A resumed import re-sends memories that landed: embed only the new ones.
    have = await transfer.present(session, Memory, [row["id"] for row, _ in plan.to_embed])
    plan.to_embed = [(row, text) for row, text in plan.to_embed if row["id"] not in have]
    if plan.to_embed:
        vectors = await runtime.embed([t for _, t in plan.to_embed])
        for (row, _), vec in zip(plan.to_embed, vectors, strict=True):
            row["embedding"] = vec
    created, skipped, new = await transfer.write(session, cube_id=cube_id, batch=plan.batch)
    # Long memories' passage vectors are derived, not exported: made here as on create.
    later = [
        (row["id"], indexing.passages(row["content"]))
        for row in plan.batch.memories
        if row["id"] in new and row.get("content")
    ]
    flat = [t for _, ps in later for t in ps]
    if flat:
        await passages.write(
            session,
            tenant_id=tenant_id,
            cube_id=cube_id,
            texts=later,
            vectors=list(await runtime.embed(flat)),
        )
    fresh = [mid for mid in plan.pending if mid in new]
    if fresh:
        await enqueue_many(
            session,
            kind="enrich",
            payloads=[{"memory_id": str(mid)} for mid in fresh],
            tenant_id=tenant_id,
            max_attempts=max_attempts,
        )
    # Imported memories are summarised like written ones (their threads, debounced).
    await summaries.schedule(
        session,
        tenant_id=tenant_id,
        cube_id=cube_id,
        threads=[
            summaries.thread_of_values(row) for row in plan.batch.memories if row["id"] in new
        ],
    )
    if ann_indexed and created.memories:
        await ann.schedule_fold(session, tenant_id=tenant_id, cube_id=cube_id, delay_s=fold_delay_s)
    return ImportResult(
        lines=len(records),
        created=created,
        skipped=skipped,
        id_map_namespace=cube_id,
        finished_at=datetime.now(UTC),
    )
