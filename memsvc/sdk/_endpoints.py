"""Every REST endpoint as a function returning a ``Call``: the one place paths and bodies live.

Adding an endpoint is one function here plus a one-line method on each client.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

import httpx

from memsvc.schemas import (
    AskBudget,
    AskRequest,
    AskResponse,
    CubeCreate,
    CubePage,
    CubeRead,
    CubeUpdate,
    Health,
    KeyCreate,
    KeyCreated,
    KeyPage,
    LinkCreate,
    LinkPage,
    LinkRead,
    MemoryBatchCreate,
    MemoryCreate,
    MemoryList,
    MemoryPage,
    MemoryRead,
    MemoryUpdate,
    MemoryVersionPage,
    MemoryVersionRead,
    ProvenanceRead,
    Role,
    SearchFilters,
    SearchRequest,
    SearchResponse,
    TenantCreate,
    TenantLimits,
    TenantLimitsRead,
    TenantPage,
    TenantRead,
    TraceRead,
)
from memsvc.schemas.ask import MAX_DEADLINE_MS, AskMode
from memsvc.schemas.cubes import PolicyName
from memsvc.schemas.decisions import Operation
from memsvc.schemas.ingest import (
    CoreRead,
    DecisionPage,
    EvalQuestion,
    FeedbackCreate,
    FeedbackRead,
    FeedbackSignal,
    IngestAccepted,
    IngestMessage,
    IngestRequest,
    IngestResponse,
    PolicyActivate,
    PolicyList,
    PolicyTrainRequest,
    PolicyTrainResponse,
    PolicyVersionRead,
)
from memsvc.schemas.jobs import JobRead
from memsvc.schemas.transfer import MEDIA_TYPE, ImportResult
from memsvc.sdk._core import (
    IDEMPOTENCY_HEADER,
    Call,
    M,
    T,
    check_keys,
    encode,
    expect,
    json_call,
    model_from,
    no_content,
    query,
    seg,
)
from memsvc.sdk._errors import InvalidResponse
from memsvc.sdk._types import (
    ID,
    CubeFields,
    CubeUpdateFields,
    MemoryFields,
    MemoryFilters,
    MemoryUpdateFields,
    SearchFields,
)

MEMORY_FILTERS = MemoryFilters.__required_keys__ | MemoryFilters.__optional_keys__
# Beyond an ask's deadline: the server's last cycle, selection and trace write, the network.
ASK_SLACK_S = 10.0


def _get(path: str, model: type[M], params: tuple[tuple[str, str], ...] = ()) -> Call[M]:
    return Call("GET", path, expect(model), params=params)


def _delete(path: str, params: tuple[tuple[str, str], ...] = ()) -> Call[None]:
    return Call("DELETE", path, no_content, params=params)


def _page(cursor: str | None, limit: int | None) -> tuple[tuple[str, str], ...]:
    return query(cursor=cursor, limit=limit)


# -- service ----------------------------------------------------------------------------


def health() -> Call[Health]:
    """``GET /healthz``."""
    return _get("/healthz", Health)


def ready() -> Call[Health]:
    """``GET /readyz``: a not-ready service answers 503 with its checks, returned as is."""
    return Call("GET", "/readyz", expect(Health), answers=frozenset({503}))


# -- tenants and keys -------------------------------------------------------------------


def create_tenant(name: str) -> Call[TenantRead]:
    """``POST /v1/tenants``."""
    return json_call("POST", "/v1/tenants", TenantCreate(name=name), expect(TenantRead))


def list_tenants(*, cursor: str | None, limit: int | None) -> Call[TenantPage]:
    """``GET /v1/tenants``."""
    return _get("/v1/tenants", TenantPage, _page(cursor, limit))


def create_key(
    *, name: str, admin: bool, role: Role | None, tenant_id: ID | None
) -> Call[KeyCreated]:
    """``POST /v1/keys``."""
    tenant = uuid.UUID(str(tenant_id)) if tenant_id is not None else None
    # Only the fields asked for: a server from before roles reads ``admin`` alone.
    body = KeyCreate(name=name, admin=admin, tenant_id=tenant, **({"role": role} if role else {}))
    return json_call("POST", "/v1/keys", body, expect(KeyCreated))


def list_keys(*, cursor: str | None, limit: int | None) -> Call[KeyPage]:
    """``GET /v1/keys``."""
    return _get("/v1/keys", KeyPage, _page(cursor, limit))


def delete_key(key_id: ID) -> Call[None]:
    """``DELETE /v1/keys/{key_id}``."""
    return _delete(f"/v1/keys/{seg(key_id)}")


def get_limits(tenant_id: ID) -> Call[TenantLimitsRead]:
    """``GET /v1/tenants/{tenant_id}/limits``."""
    return _get(f"/v1/tenants/{seg(tenant_id)}/limits", TenantLimitsRead)


def set_limits(tenant_id: ID, limits: TenantLimits) -> Call[TenantLimitsRead]:
    """``PUT /v1/tenants/{tenant_id}/limits`` (a replacement, so safe to retry)."""
    return json_call(
        "PUT",
        f"/v1/tenants/{seg(tenant_id)}/limits",
        limits,
        expect(TenantLimitsRead),
        retry_safe=True,
    )


# -- cubes ------------------------------------------------------------------------------


def create_cube(cube: CubeCreate | str | None, fields: CubeFields) -> Call[CubeRead]:
    """``POST /v1/cubes``."""
    body = model_from(CubeCreate, cube, fields, primary="name")
    return json_call("POST", "/v1/cubes", body, expect(CubeRead))


def list_cubes(*, cursor: str | None, limit: int | None) -> Call[CubePage]:
    """``GET /v1/cubes``."""
    return _get("/v1/cubes", CubePage, _page(cursor, limit))


def get_cube(cube_id: ID) -> Call[CubeRead]:
    """``GET /v1/cubes/{cube_id}``."""
    return _get(f"/v1/cubes/{seg(cube_id)}", CubeRead)


def update_cube(cube_id: ID, update: CubeUpdate | None, fields: CubeUpdateFields) -> Call[CubeRead]:
    """``PATCH /v1/cubes/{cube_id}``."""
    body = model_from(CubeUpdate, update, fields)
    return json_call("PATCH", f"/v1/cubes/{seg(cube_id)}", body, expect(CubeRead))


def delete_cube(cube_id: ID) -> Call[None]:
    """``DELETE /v1/cubes/{cube_id}``."""
    return _delete(f"/v1/cubes/{seg(cube_id)}")


# -- memories ---------------------------------------------------------------------------


def _one_memory(response: httpx.Response) -> MemoryRead:
    items = expect(MemoryList)(response).items
    if len(items) != 1:
        raise InvalidResponse(f"expected 1 created memory, got {len(items)}")
    return items[0]


def _memory_list(response: httpx.Response) -> list[MemoryRead]:
    return expect(MemoryList)(response).items


def _create_memories(
    cube_id: ID,
    memories: Sequence[MemoryCreate],
    idempotency_key: str | None,
    parse: Callable[[httpx.Response], T],
    enrich: bool = True,
) -> Call[T]:
    # A fresh key per call, reused by every retry of it: the server applies it once.
    key = idempotency_key or str(uuid.uuid4())
    # ``enrich`` goes on the wire only when it is not the default.
    extra = {} if enrich else {"enrich": False}
    body = MemoryBatchCreate(memories=list(memories), **extra)
    path = f"/v1/cubes/{seg(cube_id)}/memories"
    return json_call("POST", path, body, parse, headers={IDEMPOTENCY_HEADER: key})


def add_memory(
    cube_id: ID,
    memory: MemoryCreate | str | None,
    fields: MemoryFields,
    idempotency_key: str | None,
) -> Call[MemoryRead]:
    """``POST /v1/cubes/{cube_id}/memories`` with one memory."""
    body = model_from(MemoryCreate, memory, fields, primary="content")
    return _create_memories(cube_id, [body], idempotency_key, _one_memory)


def add_memories(
    cube_id: ID, memories: Sequence[MemoryCreate], idempotency_key: str | None, enrich: bool
) -> Call[list[MemoryRead]]:
    """``POST /v1/cubes/{cube_id}/memories`` with a batch."""
    return _create_memories(cube_id, memories, idempotency_key, _memory_list, enrich)


def list_memories(
    cube_id: ID, *, cursor: str | None, limit: int | None, filters: MemoryFilters
) -> Call[MemoryPage]:
    """``GET /v1/cubes/{cube_id}/memories``."""
    check_keys(filters, MEMORY_FILTERS, "memory filter")
    params = query(**filters, cursor=cursor, limit=limit)
    return _get(f"/v1/cubes/{seg(cube_id)}/memories", MemoryPage, params)


def get_memory(memory_id: ID) -> Call[MemoryRead]:
    """``GET /v1/memories/{memory_id}``."""
    return _get(f"/v1/memories/{seg(memory_id)}", MemoryRead)


def update_memory(
    memory_id: ID, update: MemoryUpdate | None, fields: MemoryUpdateFields
) -> Call[MemoryRead]:
    """``PATCH /v1/memories/{memory_id}``."""
    body = model_from(MemoryUpdate, update, fields)
    return json_call("PATCH", f"/v1/memories/{seg(memory_id)}", body, expect(MemoryRead))


def delete_memory(memory_id: ID, *, hard: bool) -> Call[None]:
    """``DELETE /v1/memories/{memory_id}`` (``?hard=true`` erases)."""
    return _delete(f"/v1/memories/{seg(memory_id)}", query(hard=True if hard else None))


def restore_memory(memory_id: ID) -> Call[MemoryRead]:
    """``POST /v1/memories/{memory_id}/restore``."""
    return Call("POST", f"/v1/memories/{seg(memory_id)}/restore", expect(MemoryRead))


def list_versions(
    memory_id: ID, *, cursor: str | None, limit: int | None
) -> Call[MemoryVersionPage]:
    """``GET /v1/memories/{memory_id}/versions``."""
    path = f"/v1/memories/{seg(memory_id)}/versions"
    return _get(path, MemoryVersionPage, _page(cursor, limit))


def get_version(memory_id: ID, version: int) -> Call[MemoryVersionRead]:
    """``GET /v1/memories/{memory_id}/versions/{n}``."""
    return _get(f"/v1/memories/{seg(memory_id)}/versions/{int(version)}", MemoryVersionRead)


def get_provenance(memory_id: ID) -> Call[ProvenanceRead]:
    """``GET /v1/memories/{memory_id}/provenance``."""
    return _get(f"/v1/memories/{seg(memory_id)}/provenance", ProvenanceRead)


# -- retrieval --------------------------------------------------------------------------


def search(
    cube_id: ID, request: SearchRequest | str | None, fields: SearchFields
) -> Call[SearchResponse]:
    """``POST /v1/cubes/{cube_id}/search`` (read-only, so safe to retry)."""
    body = model_from(SearchRequest, request, fields, primary="query")
    path = f"/v1/cubes/{seg(cube_id)}/search"
    return json_call("POST", path, body, expect(SearchResponse), retry_safe=True)


def ask(
    cube_id: ID,
    question: str,
    *,
    now: datetime | None,
    top_k: int,
    filters: SearchFilters | None,
    mode: AskMode,
    budget: AskBudget | None,
    stream: bool,
) -> Call[AskResponse]:
    """``POST /v1/cubes/{cube_id}/ask``, as JSON or (``stream``) as server-sent events.
    It changes no memory (it writes only its own trace), so a ``heuristic`` ask is retried
    like search; one that may call the LLM (``auto``, ``llm``) is retried only when it never
    left this machine, since a repeat would spend the tenant's LLM budget again. Its read
    timeout covers its deadline (the server's cap when the budget names none)."""
    given = {"now": now, "filters": filters, "budget": budget}
    request = AskRequest.model_validate(
        {"question": question, "top_k": top_k, "mode": mode}
        | {name: value for name, value in given.items() if value is not None}
    )
    deadline_ms = request.budget.deadline_ms if request.budget else None
    headers = {"Content-Type": "application/json"}
    if stream:
        headers["Accept"] = "text/event-stream"
    return Call(
        "POST",
        f"/v1/cubes/{seg(cube_id)}/ask",
        expect(AskResponse),
        body=encode(request),
        headers=headers,
        retry_safe=request.mode == "heuristic",
        min_read=(deadline_ms or MAX_DEADLINE_MS) / 1000 + ASK_SLACK_S,
    )


def get_trace(trace_id: ID) -> Call[TraceRead]:
    """``GET /v1/traces/{trace_id}``."""
    return _get(f"/v1/traces/{seg(trace_id)}", TraceRead)


# -- ingest and write policies ---------------------------------------------------------

MessageLike = IngestMessage | Mapping[str, object]
"""One message to ingest: an ``IngestMessage`` or a dict of its fields."""


def _ingest(
    cube_id: ID,
    messages: Sequence[MessageLike],
    *,
    policy: PolicyName | None,
    user_id: str | None,
    agent_id: str | None,
    idempotency_key: str | None,
    queued: bool,
    parse: Callable[[httpx.Response], T],
) -> Call[T]:
    given = {"policy": policy, "user_id": user_id, "agent_id": agent_id}
    request = IngestRequest.model_validate(
        {"messages": [_message(m) for m in messages]}
        | {name: value for name, value in given.items() if value is not None}
        | ({"async": True} if queued else {})
    )
    # As for created memories: one key per call, reused by its retries, applied once.
    key = idempotency_key or str(uuid.uuid4())
    return Call(
        "POST",
        f"/v1/cubes/{seg(cube_id)}/ingest",
        parse,
        # ``by_alias``: the wire name of ``async_`` is ``"async"``.
        body=request.model_dump_json(exclude_unset=True, by_alias=True).encode(),
        headers={"Content-Type": "application/json", IDEMPOTENCY_HEADER: key},
        # A batch of long messages is embedded and decided before the answer (an ``llm``
        # policy calls its model too): a shorter client default would cut it off, and its
        # retry would only wait for the first to commit and replay it.
        min_read=None if queued else INGEST_READ_S,
    )


def _message(message: MessageLike) -> IngestMessage:
    if isinstance(message, IngestMessage):
        return message
    if not isinstance(message, Mapping):
        raise TypeError(f"expected IngestMessage or a mapping, got {type(message).__name__}")
    return IngestMessage.model_validate(dict(message))


# The read timeout a synchronous ingest gets at least (the server's response timeout).
INGEST_READ_S = 65.0


def ingest(
    cube_id: ID,
    messages: Sequence[MessageLike],
    *,
    policy: PolicyName | None,
    user_id: str | None,
    agent_id: str | None,
    idempotency_key: str | None,
) -> Call[IngestResponse]:
    """``POST /v1/cubes/{cube_id}/ingest``, answered when the policy has decided."""
    return _ingest(
        cube_id,
        messages,
        policy=policy,
        user_id=user_id,
        agent_id=agent_id,
        idempotency_key=idempotency_key,
        queued=False,
        parse=expect(IngestResponse),
    )


def _accepted(response: httpx.Response) -> IngestAccepted:
    if response.status_code != 202:
        raise InvalidResponse(
            f"POST {response.request.url.path}: expected 202 for an async ingest, "
            f"got {response.status_code}"
        )
    return expect(IngestAccepted)(response)


def ingest_async(
    cube_id: ID,
    messages: Sequence[MessageLike],
    *,
    policy: PolicyName | None,
    user_id: str | None,
    agent_id: str | None,
    idempotency_key: str | None,
) -> Call[IngestAccepted]:
    """``POST /v1/cubes/{cube_id}/ingest`` with ``"async": true``: 202 and a job."""
    return _ingest(
        cube_id,
        messages,
        policy=policy,
        user_id=user_id,
        agent_id=agent_id,
        idempotency_key=idempotency_key,
        queued=True,
        parse=_accepted,
    )


def get_core(cube_id: ID, *, user_id: str | None, agent_id: str | None) -> Call[CoreRead]:
    """``GET /v1/cubes/{cube_id}/core``."""
    params = query(user_id=user_id, agent_id=agent_id)
    return _get(f"/v1/cubes/{seg(cube_id)}/core", CoreRead, params)


def list_decisions(
    cube_id: ID,
    *,
    operation: Operation | None,
    ingest_id: ID | None,
    memory_id: ID | None,
    cursor: str | None,
    limit: int | None,
) -> Call[DecisionPage]:
    """``GET /v1/cubes/{cube_id}/decisions``."""
    params = query(
        operation=operation, ingest_id=ingest_id, memory_id=memory_id, cursor=cursor, limit=limit
    )
    return _get(f"/v1/cubes/{seg(cube_id)}/decisions", DecisionPage, params)


def feedback(
    memory_ids: Sequence[ID], signal: FeedbackSignal, *, trace_id: ID | None
) -> Call[FeedbackRead]:
    """``POST /v1/feedback`` (each call records again, so retried only when not sent)."""
    body = FeedbackCreate.model_validate(
        {"memory_ids": [str(m) for m in memory_ids], "signal": signal}
        | ({"trace_id": str(trace_id)} if trace_id is not None else {})
    )
    return json_call("POST", "/v1/feedback", body, expect(FeedbackRead))


def list_policies() -> Call[PolicyList]:
    """``GET /v1/policies``."""
    return _get("/v1/policies", PolicyList)


def train_policy(
    name: PolicyName,
    *,
    cube_ids: Sequence[ID] | None,
    eval_set: Sequence[EvalQuestion] | None,
    activate: bool,
) -> Call[PolicyTrainResponse]:
    """``POST /v1/policies/{name}/train`` (a new version each time: retried only when not
    sent)."""
    fields: dict[str, object] = {}
    if cube_ids is not None:
        fields["cube_ids"] = [str(c) for c in cube_ids]
    if eval_set:
        fields["eval_set"] = list(eval_set)
    if activate:
        fields["activate"] = True
    body = PolicyTrainRequest.model_validate(fields)
    return json_call("POST", f"/v1/policies/{seg(name)}/train", body, expect(PolicyTrainResponse))


def activate_policy(name: PolicyName, version: int) -> Call[PolicyVersionRead]:
    """``POST /v1/policies/{name}/activate``: sets the active version, so safe to retry."""
    body = PolicyActivate(version=version)
    path = f"/v1/policies/{seg(name)}/activate"
    return json_call("POST", path, body, expect(PolicyVersionRead), retry_safe=True)


def rollback_policy(name: PolicyName) -> Call[PolicyVersionRead]:
    """``POST /v1/policies/{name}/rollback`` (a step back each time: retried only when not
    sent)."""
    return Call("POST", f"/v1/policies/{seg(name)}/rollback", expect(PolicyVersionRead))


def get_job(job_id: int) -> Call[JobRead]:
    """``GET /v1/jobs/{job_id}``: how an async ingest (or any job of the tenant) went."""
    return _get(f"/v1/jobs/{int(job_id)}", JobRead)


# -- graph ------------------------------------------------------------------------------


def list_links(memory_id: ID, *, cursor: str | None, limit: int | None) -> Call[LinkPage]:
    """``GET /v1/memories/{memory_id}/links``."""
    return _get(f"/v1/memories/{seg(memory_id)}/links", LinkPage, _page(cursor, limit))


def create_link(link: LinkCreate) -> Call[LinkRead]:
    """``POST /v1/links``."""
    return json_call("POST", "/v1/links", link, expect(LinkRead))


def delete_link(link_id: ID) -> Call[None]:
    """``DELETE /v1/links/{link_id}``."""
    return _delete(f"/v1/links/{seg(link_id)}")


# -- import / export --------------------------------------------------------------------


def export_cube(cube_id: ID) -> Call[None]:
    """``GET /v1/cubes/{cube_id}/export`` (JSON lines, read as a stream by the clients)."""
    return Call("GET", f"/v1/cubes/{seg(cube_id)}/export", no_content)


def import_records(cube_id: ID, body: bytes) -> Call[ImportResult]:
    """``POST /v1/cubes/{cube_id}/import``: safe to retry, a re-sent line writes nothing."""
    headers = {"Content-Type": MEDIA_TYPE}
    path = f"/v1/cubes/{seg(cube_id)}/import"
    return Call("POST", path, expect(ImportResult), body=body, headers=headers, retry_safe=True)


def ndjson(lines: Iterable[str | bytes]) -> bytes:
    """Lines joined into a JSON-lines body (each line's own newline, if any, dropped)."""
    out = bytearray()
    for line in lines:
        raw = line.encode() if isinstance(line, str) else line
        out += raw.rstrip(b"\r\n") + b"\n"
    return bytes(out)
