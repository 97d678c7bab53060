"""Ask (iterative retrieval), as JSON or as server-sent events; traces."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from memsvc.api.deps import CubeDep, PrincipalDep, SessionDep, StateDep, tenant_limits
from memsvc.errors import MemsvcError, NotFound, error_body
from memsvc.retrieval import service
from memsvc.retrieval.ask import Spend
from memsvc.schemas import AskRequest, AskResponse, TraceRead, TraceStep
from memsvc.state import AppState
from memsvc.store import traces

router = APIRouter(prefix="/v1", tags=["ask"])
log = logging.getLogger("memsvc.api")

SSE = "text/event-stream"


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


@router.post(
    "/cubes/{cube_id}/ask",
    response_model=AskResponse,
    responses={200: {"content": {SSE: {"schema": {"type": "string"}}}}},
)
async def ask_cube(
    cube: CubeDep,
    body: AskRequest,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    request: Request,
) -> AskResponse | StreamingResponse:
    """Answer a question, or assemble the best evidence for it, by iterative retrieval.
    With ``Accept: text/event-stream`` each step streams as an ``event: step`` and the
    response follows as ``event: result`` (a failure after the stream began as
    ``event: error`` with the usual error body)."""
    limits = await tenant_limits(state, principal.tenant_id)
    spend = service.ask_plan(body, settings=state.settings, limits=limits, llm=state.llm)
    if SSE in request.headers.get("accept", ""):
        return StreamingResponse(
            _stream(state, principal.tenant_id, cube.id, body, spend),
            media_type=SSE,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    return await service.ask_cube(
        session,
        runtime=state.runtime,
        settings=state.settings,
        llm=state.llm,
        db=state.db,
        tenant_id=principal.tenant_id,
        cube_id=cube.id,
        request=body,
        spend=spend,
    )


async def _stream(
    state: AppState,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    body: AskRequest,
    spend: Spend,
) -> AsyncIterator[bytes]:
    """The ask's steps as they happen, then its result; the ask runs in its own tenant
    transaction (the request's has ended by the time a stream is read). A client that goes
    away cancels the ask, and its trace is not kept."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def emit(step: TraceStep) -> None:
        await queue.put(_sse("step", step.model_dump_json(exclude_none=True)))

    async def run() -> None:
        try:
            async with state.db.tenant_transaction(tenant_id) as session:
                resp = await service.ask_cube(
                    session,
                    runtime=state.runtime,
                    settings=state.settings,
                    llm=state.llm,
                    db=state.db,
                    tenant_id=tenant_id,
                    cube_id=cube_id,
                    request=body,
                    spend=spend,
                    emit=emit,
                )
            await queue.put(_sse("result", resp.model_dump_json()))
        except MemsvcError as exc:
            await queue.put(_sse("error", json.dumps(exc.to_wire())))
        except Exception:  # the stream's boundary: the status line is already sent
            log.exception("ask stream failed", extra={"cube_id": str(cube_id)})
            body_ = error_body("internal_error", "internal error")
            await queue.put(_sse("error", json.dumps(body_)))
        finally:
            await queue.put(None)

    task = asyncio.create_task(run())
    try:
        while (item := await queue.get()) is not None:
            yield item
    finally:
        if not task.done():
            task.cancel()


@router.get("/traces/{trace_id}", response_model=TraceRead)
async def get_trace(trace_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> TraceRead:
    """What one ask did, step by step (kept for ``ask.trace_retention_days``)."""
    found = await traces.get(session, trace_id, tenant_id=principal.tenant_id)
    if found is None:
        raise NotFound("trace not found")
    return found
