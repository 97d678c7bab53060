"""``MemoryClient``: the synchronous client. Its async twin is ``_async_client.py``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Self, TypeVar, Unpack

import httpx

from memsvc.schemas import (
    AskBudget,
    AskResponse,
    CubeCreate,
    CubePage,
    CubeRead,
    CubeUpdate,
    Health,
    KeyCreated,
    KeyPage,
    KeyRead,
    LinkCreate,
    LinkPage,
    LinkRead,
    MemoryCreate,
    MemoryPage,
    MemoryRead,
    MemoryUpdate,
    MemoryVersionPage,
    MemoryVersionRead,
    Page,
    ProvenanceRead,
    Role,
    SearchFilters,
    SearchRequest,
    SearchResponse,
    TenantLimits,
    TenantLimitsRead,
    TenantPage,
    TenantRead,
    TraceRead,
)
from memsvc.schemas.ask import AskMode
from memsvc.schemas.cubes import PolicyName
from memsvc.schemas.decisions import DecisionRead, Operation
from memsvc.schemas.ingest import (
    CoreRead,
    DecisionPage,
    EvalQuestion,
    FeedbackRead,
    FeedbackSignal,
    IngestAccepted,
    IngestResponse,
    PolicyList,
    PolicyTrainResponse,
    PolicyVersionRead,
)
from memsvc.schemas.jobs import JobRead
from memsvc.schemas.transfer import ImportResult
from memsvc.sdk import _endpoints as api
from memsvc.sdk._core import (
    AskItem,
    AskStream,
    Attempts,
    Call,
    RetryPolicy,
    client_headers,
    finish,
    is_event_stream,
    next_cursor,
    stream_failed,
    timeout_for,
)
from memsvc.sdk._endpoints import MessageLike
from memsvc.sdk._types import (
    ID,
    CubeFields,
    CubeUpdateFields,
    MemoryFields,
    MemoryFilters,
    MemoryUpdateFields,
    SearchFields,
)

T = TypeVar("T")


class MemoryClient:
    """Synchronous client of the memsvc REST API (v1)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.retry = RetryPolicy(max_retries=max_retries, backoff=backoff)
        self._http = httpx.Client(
            base_url=base_url,
            headers=client_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, call: Call[T], timeout: float | None = None) -> T:
        attempts = Attempts(call, self.retry)
        while True:
            request = self._http.build_request(
                call.method,
                call.path,
                params=call.params,
                content=call.body,
                headers=call.headers,
                timeout=timeout_for(call, self._http.timeout, timeout),
            )
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                delay = attempts.after_error(exc)
            else:
                retry_in = attempts.after_response(response)
                if retry_in is None:
                    return finish(call, response)
                delay = retry_in
            time.sleep(delay)

    def _pages(
        self, page: Callable[[str | None], Call[Page[T]]], timeout: float | None = None
    ) -> Iterator[T]:
        cursor: str | None = None
        while True:
            current = self._send(page(cursor), timeout)
            yield from current.items
            cursor = next_cursor(cursor, current)
            if cursor is None:
                return

    # -- service ------------------------------------------------------------------------

    def health(self, *, timeout: float | None = None) -> Health:
        """Liveness of the service."""
        return self._send(api.health(), timeout)

    def ready(self, *, timeout: float | None = None) -> Health:
        """Readiness (database, models); a not-ready 503 comes back as ``Health``, not raised."""
        return self._send(api.ready(), timeout)

    # -- tenants and keys (admin) -------------------------------------------------------

    def create_tenant(self, name: str, *, timeout: float | None = None) -> TenantRead:
        """Create a tenant (admin key)."""
        return self._send(api.create_tenant(name), timeout)

    def create_key(
        self,
        *,
        name: str = "key",
        role: Role | None = None,
        admin: bool = False,
        tenant_id: ID | None = None,
        timeout: float | None = None,
    ) -> KeyCreated:
        """Create an API key; its secret is in the answer only (a tenant admin key creates
        ``member``/``admin`` keys of its own tenant; the operator any, in any tenant)."""
        return self._send(
            api.create_key(name=name, admin=admin, role=role, tenant_id=tenant_id), timeout
        )

    def list_tenants(
        self, *, cursor: str | None = None, limit: int | None = None, timeout: float | None = None
    ) -> TenantPage:
        """One page of every tenant (the operator key)."""
        return self._send(api.list_tenants(cursor=cursor, limit=limit), timeout)

    def list_keys(
        self, *, cursor: str | None = None, limit: int | None = None, timeout: float | None = None
    ) -> KeyPage:
        """One page of the tenant's API keys."""
        return self._send(api.list_keys(cursor=cursor, limit=limit), timeout)

    def iter_keys(
        self, *, page_size: int | None = None, timeout: float | None = None
    ) -> Iterator[KeyRead]:
        """Every API key of the tenant, page after page."""
        return self._pages(lambda cursor: api.list_keys(cursor=cursor, limit=page_size), timeout)

    def delete_key(self, key_id: ID, *, timeout: float | None = None) -> None:
        """Revoke an API key."""
        self._send(api.delete_key(key_id), timeout)

    def get_limits(self, tenant_id: ID, *, timeout: float | None = None) -> TenantLimitsRead:
        """A tenant's limits: its overrides, those that apply and today's writes (the
        operator any tenant; a tenant admin its own)."""
        return self._send(api.get_limits(tenant_id), timeout)

    def set_limits(
        self,
        tenant_id: ID,
        *,
        rate_per_s: float | None = None,
        rate_burst: int | None = None,
        daily_write_quota: int | None = None,
        ask_max_cycles: int | None = None,
        ask_max_llm_calls: int | None = None,
        ask_max_tokens: int | None = None,
        ask_deadline_ms: int | None = None,
        timeout: float | None = None,
    ) -> TenantLimitsRead:
        """Replace a tenant's overrides (operator key), the caps on one ask's budget
        included; None: the server's default."""
        limits = TenantLimits(
            rate_per_s=rate_per_s,
            rate_burst=rate_burst,
            daily_write_quota=daily_write_quota,
            ask_max_cycles=ask_max_cycles,
            ask_max_llm_calls=ask_max_llm_calls,
            ask_max_tokens=ask_max_tokens,
            ask_deadline_ms=ask_deadline_ms,
        )
        return self._send(api.set_limits(tenant_id, limits), timeout)

    # -- cubes --------------------------------------------------------------------------

    def create_cube(
        self,
        cube: CubeCreate | str | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Unpack[CubeFields],
    ) -> CubeRead:
        """Create a cube from a ``CubeCreate``, a name, or keywords."""
        return self._send(api.create_cube(cube, fields), timeout)

    def list_cubes(
        self, *, cursor: str | None = None, limit: int | None = None, timeout: float | None = None
    ) -> CubePage:
        """One page of cubes."""
        return self._send(api.list_cubes(cursor=cursor, limit=limit), timeout)

    def iter_cubes(
        self, *, page_size: int | None = None, timeout: float | None = None
    ) -> Iterator[CubeRead]:
        """Every cube, page after page."""
        return self._pages(lambda cursor: api.list_cubes(cursor=cursor, limit=page_size), timeout)

    def get_cube(self, cube_id: ID, *, timeout: float | None = None) -> CubeRead:
        """One cube."""
        return self._send(api.get_cube(cube_id), timeout)

    def update_cube(
        self,
        cube_id: ID,
        update: CubeUpdate | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Unpack[CubeUpdateFields],
    ) -> CubeRead:
        """Change a cube; only the fields given are sent."""
        return self._send(api.update_cube(cube_id, update, fields), timeout)

    def delete_cube(self, cube_id: ID, *, timeout: float | None = None) -> None:
        """Delete a cube."""
        self._send(api.delete_cube(cube_id), timeout)

    # -- memories -----------------------------------------------------------------------

    def add(
        self,
        cube_id: ID,
        memory: MemoryCreate | str | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        **fields: Unpack[MemoryFields],
    ) -> MemoryRead:
        """Add one memory (a ``MemoryCreate``, its content or keywords); never twice on retry."""
        return self._send(api.add_memory(cube_id, memory, fields, idempotency_key), timeout)

    def add_many(
        self,
        cube_id: ID,
        memories: Sequence[MemoryCreate],
        /,
        *,
        idempotency_key: str | None = None,
        enrich: bool = True,
        timeout: float | None = None,
    ) -> list[MemoryRead]:
        """Add a batch of memories in one transaction; retries never duplicate.
        ``enrich=False``: stored and searchable, but not enriched (a bulk import)."""
        return self._send(api.add_memories(cube_id, memories, idempotency_key, enrich), timeout)

    def list_memories(
        self,
        cube_id: ID,
        /,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
        **filters: Unpack[MemoryFilters],
    ) -> MemoryPage:
        """One page of a cube's memories matching the filters."""
        return self._send(
            api.list_memories(cube_id, cursor=cursor, limit=limit, filters=filters), timeout
        )

    def iter_memories(
        self,
        cube_id: ID,
        /,
        *,
        page_size: int | None = None,
        timeout: float | None = None,
        **filters: Unpack[MemoryFilters],
    ) -> Iterator[MemoryRead]:
        """Every memory of a cube matching the filters, page after page."""
        return self._pages(
            lambda cursor: api.list_memories(
                cube_id, cursor=cursor, limit=page_size, filters=filters
            ),
            timeout,
        )

    def get_memory(self, memory_id: ID, *, timeout: float | None = None) -> MemoryRead:
        """One memory, current version."""
        return self._send(api.get_memory(memory_id), timeout)

    def update_memory(
        self,
        memory_id: ID,
        update: MemoryUpdate | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Unpack[MemoryUpdateFields],
    ) -> MemoryRead:
        """Append a version made against ``expected_version``: applied over enrichment since;
        ``Conflict`` when another writer changed the memory, or enrichment a field you set."""
        return self._send(api.update_memory(memory_id, update, fields), timeout)

    def delete_memory(
        self, memory_id: ID, *, hard: bool = False, timeout: float | None = None
    ) -> None:
        """Soft-delete a memory (restorable), or erase it with ``hard=True``."""
        self._send(api.delete_memory(memory_id, hard=hard), timeout)

    def restore_memory(self, memory_id: ID, *, timeout: float | None = None) -> MemoryRead:
        """Undo a soft delete."""
        return self._send(api.restore_memory(memory_id), timeout)

    def list_versions(
        self,
        memory_id: ID,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> MemoryVersionPage:
        """One page of a memory's version history."""
        return self._send(api.list_versions(memory_id, cursor=cursor, limit=limit), timeout)

    def iter_versions(
        self, memory_id: ID, *, page_size: int | None = None, timeout: float | None = None
    ) -> Iterator[MemoryVersionRead]:
        """A memory's whole version history, page after page."""
        return self._pages(
            lambda cursor: api.list_versions(memory_id, cursor=cursor, limit=page_size), timeout
        )

    def get_version(
        self, memory_id: ID, version: int, *, timeout: float | None = None
    ) -> MemoryVersionRead:
        """One version of a memory."""
        return self._send(api.get_version(memory_id, version), timeout)

    def get_provenance(self, memory_id: ID, *, timeout: float | None = None) -> ProvenanceRead:
        """Where each version of a memory came from."""
        return self._send(api.get_provenance(memory_id), timeout)

    # -- retrieval ----------------------------------------------------------------------

    def search(
        self,
        cube_id: ID,
        request: SearchRequest | str | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Unpack[SearchFields],
    ) -> SearchResponse:
        """Hybrid search of a cube (a ``SearchRequest``, a query string, or keywords)."""
        return self._send(api.search(cube_id, request, fields), timeout)

    def ask(
        self,
        cube_id: ID,
        question: str,
        *,
        now: datetime | None = None,
        top_k: int = 10,
        filters: SearchFilters | None = None,
        mode: AskMode = "auto",
        budget: AskBudget | None = None,
        timeout: float | None = None,
    ) -> AskResponse:
        """Answer a question (or, without an LLM, gather its evidence) by iterative retrieval;
        the read timeout is raised to cover the ask's deadline unless ``timeout`` is given."""
        call = api.ask(
            cube_id,
            question,
            now=now,
            top_k=top_k,
            filters=filters,
            mode=mode,
            budget=budget,
            stream=False,
        )
        return self._send(call, timeout)

    def ask_stream(
        self,
        cube_id: ID,
        question: str,
        *,
        now: datetime | None = None,
        top_k: int = 10,
        filters: SearchFilters | None = None,
        mode: AskMode = "auto",
        budget: AskBudget | None = None,
        timeout: float | None = None,
    ) -> Iterator[AskItem]:
        """``ask`` as it happens: each ``TraceStep``, then the ``AskResponse`` last
        (``isinstance`` tells them apart); an error mid-stream raises its ``MemsvcError``.
        Not retried."""
        call = api.ask(
            cube_id,
            question,
            now=now,
            top_k=top_k,
            filters=filters,
            mode=mode,
            budget=budget,
            stream=True,
        )
        with self._http.stream(
            call.method,
            call.path,
            content=call.body,
            headers=call.headers,
            timeout=timeout_for(call, self._http.timeout, timeout),
        ) as response:
            if not response.is_success:
                response.read()
                raise stream_failed(response)
            if not is_event_stream(response):  # a server that answered plain JSON
                response.read()
                yield finish(call, response)
                return
            reader = AskStream(call.label)
            for line in response.iter_lines():
                item = reader.feed(line)
                if item is not None:
                    yield item
            item = reader.feed("")  # a last event without its blank line
            if item is not None:
                yield item
            reader.close()

    def get_trace(self, trace_id: ID, *, timeout: float | None = None) -> TraceRead:
        """What one ask did, step by step (kept for the server's retention period)."""
        return self._send(api.get_trace(trace_id), timeout)

    # -- ingest and write policies ------------------------------------------------------

    def ingest(
        self,
        cube_id: ID,
        messages: Sequence[MessageLike],
        *,
        policy: PolicyName | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> IngestResponse:
        """Store conversation messages (``IngestMessage``s or dicts) and let a write policy
        decide what memory each becomes (default policy: the cube's, else ``learned``);
        returns the decisions and the memories written. Never applied twice on retry."""
        call = api.ingest(
            cube_id,
            messages,
            policy=policy,
            user_id=user_id,
            agent_id=agent_id,
            idempotency_key=idempotency_key,
        )
        return self._send(call, timeout)

    def ingest_async(
        self,
        cube_id: ID,
        messages: Sequence[MessageLike],
        *,
        policy: PolicyName | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> IngestAccepted:
        """``ingest`` with ``"async": true``: queued at once; the answer names the job
        (``GET /v1/jobs/{job_id}``) and the ``ingest_id`` its decisions will carry."""
        call = api.ingest_async(
            cube_id,
            messages,
            policy=policy,
            user_id=user_id,
            agent_id=agent_id,
            idempotency_key=idempotency_key,
        )
        return self._send(call, timeout)

    def get_core(
        self,
        cube_id: ID,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        timeout: float | None = None,
    ) -> CoreRead:
        """The cube's core blocks (profiles); with ``user_id``/``agent_id`` that scope's."""
        return self._send(api.get_core(cube_id, user_id=user_id, agent_id=agent_id), timeout)

    def list_decisions(
        self,
        cube_id: ID,
        *,
        operation: Operation | None = None,
        ingest_id: ID | None = None,
        memory_id: ID | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> DecisionPage:
        """One page of the write policies' decisions on the cube's messages, oldest first."""
        call = api.list_decisions(
            cube_id,
            operation=operation,
            ingest_id=ingest_id,
            memory_id=memory_id,
            cursor=cursor,
            limit=limit,
        )
        return self._send(call, timeout)

    def iter_decisions(
        self,
        cube_id: ID,
        *,
        operation: Operation | None = None,
        ingest_id: ID | None = None,
        memory_id: ID | None = None,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[DecisionRead]:
        """Every decision matching the filters, page after page."""
        return self._pages(
            lambda cursor: api.list_decisions(
                cube_id,
                operation=operation,
                ingest_id=ingest_id,
                memory_id=memory_id,
                cursor=cursor,
                limit=page_size,
            ),
            timeout,
        )

    def feedback(
        self,
        memory_ids: Sequence[ID],
        signal: FeedbackSignal,
        *,
        trace_id: ID | None = None,
        timeout: float | None = None,
    ) -> FeedbackRead:
        """Report memories ``used``, ``wrong`` or ``irrelevant``: the rewards a write policy
        trains on (``NotFound`` when one is not the tenant's)."""
        return self._send(api.feedback(memory_ids, signal, trace_id=trace_id), timeout)

    def list_policies(self, *, timeout: float | None = None) -> PolicyList:
        """The write policies, their versions and the active one of each."""
        return self._send(api.list_policies(), timeout)

    def train_policy(
        self,
        name: PolicyName,
        *,
        cube_ids: Sequence[ID] | None = None,
        eval_set: Sequence[EvalQuestion] | None = None,
        activate: bool = False,
        timeout: float | None = None,
    ) -> PolicyTrainResponse:
        """Train a new version of a policy from the tenant's rewards and labelled questions
        (admin key); active only with ``activate=True``."""
        call = api.train_policy(name, cube_ids=cube_ids, eval_set=eval_set, activate=activate)
        return self._send(call, timeout)

    def activate_policy(
        self, name: PolicyName, version: int, *, timeout: float | None = None
    ) -> PolicyVersionRead:
        """Make a version of a policy the active one (admin key)."""
        return self._send(api.activate_policy(name, version), timeout)

    def rollback_policy(
        self, name: PolicyName, *, timeout: float | None = None
    ) -> PolicyVersionRead:
        """Back to the version active before (admin key; ``Conflict`` when the packaged one
        is active already)."""
        return self._send(api.rollback_policy(name), timeout)

    def get_job(self, job_id: int, *, timeout: float | None = None) -> JobRead:
        """One job of the tenant: ``status`` and ``result`` of an ``ingest_async``."""
        return self._send(api.get_job(job_id), timeout)

    # -- graph --------------------------------------------------------------------------

    def list_links(
        self,
        memory_id: ID,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> LinkPage:
        """One page of a memory's live links, both directions, oldest first."""
        return self._send(api.list_links(memory_id, cursor=cursor, limit=limit), timeout)

    def create_link(self, link: LinkCreate, *, timeout: float | None = None) -> LinkRead:
        """A manual link between two memories of one cube (``Conflict`` when already live)."""
        return self._send(api.create_link(link), timeout)

    def delete_link(self, link_id: ID, *, timeout: float | None = None) -> None:
        """Retire a link."""
        self._send(api.delete_link(link_id), timeout)

    # -- import / export ----------------------------------------------------------------

    def iter_export(self, cube_id: ID, *, timeout: float | None = None) -> Iterator[str]:
        """The cube as JSON lines (``memsvc.schemas.transfer``), streamed; not retried."""
        call = api.export_cube(cube_id)
        with self._http.stream(
            call.method,
            call.path,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        ) as response:
            if not response.is_success:
                response.read()
                raise stream_failed(response)
            for line in response.iter_lines():
                if line:
                    yield line

    def import_records(
        self, cube_id: ID, lines: Iterable[str | bytes], *, timeout: float | None = None
    ) -> ImportResult:
        """Write export lines into a cube in one request (all or nothing; safe to resend)."""
        return self._send(api.import_records(cube_id, api.ndjson(lines)), timeout)
