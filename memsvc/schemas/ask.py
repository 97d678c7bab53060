"""``ask``: iterative retrieval (after ComoRAG), its budget, its answer and its trace.

``POST /v1/cubes/{cube_id}/ask`` answers a question or, without an LLM, assembles the best
evidence it can: a cheap hybrid pass over the three layers first, a sufficiency gate, then
probe cycles (and with an LLM, one structured call per cycle that answers or asks for
probes) until the gate is satisfied or the budget is spent. Every step is a
:class:`TraceStep`; the steps stream as server-sent events with
``Accept: text/event-stream`` (``event: step``, then one ``event: result``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, StrictInt

from memsvc.schemas.common import ReadModel, Timestamp, WireModel
from memsvc.schemas.memories import MemoryRead
from memsvc.schemas.search import SearchFilters

AskMode = Literal["auto", "heuristic", "llm"]
# Why an ask ended before its gate was satisfied.
Stopped = Literal["budget", "deadline"]
StepKind = Literal["retrieve", "gate", "llm", "probe", "fold", "select", "stop", "error"]

MAX_CYCLES = 8
MAX_LLM_CALLS = 32
MAX_TOKENS = 1_000_000
MAX_DEADLINE_MS = 120_000


class AskBudget(WireModel):
    """What one ask may spend; a field left out takes the server's default, and a tenant's
    caps (``PUT /v1/tenants/{id}/limits``) bound what a request may ask for."""

    max_cycles: StrictInt | None = Field(default=None, ge=0, le=MAX_CYCLES)
    max_llm_calls: StrictInt | None = Field(default=None, ge=0, le=MAX_LLM_CALLS)
    max_tokens: StrictInt | None = Field(default=None, ge=0, le=MAX_TOKENS)
    deadline_ms: StrictInt | None = Field(default=None, ge=1, le=MAX_DEADLINE_MS)


class AskRequest(WireModel):
    question: str = Field(min_length=1, max_length=8000)
    # The asker's current time: "last week" is read against it (see ``SearchRequest.now``).
    now: Timestamp | None = None
    top_k: StrictInt = Field(default=10, ge=1, le=1000)
    filters: SearchFilters | None = None
    # auto: LLM when one is configured, else heuristic.
    mode: AskMode = "auto"
    budget: AskBudget | None = None


class Evidence(ReadModel):
    memory: MemoryRead
    score: float
    # Which query found it first ("question" or a probe's text) and in which cycle.
    found_by: str
    cycle: int
    # Why it was chosen: the aspects of the question it covers, its rank.
    why: list[str] = Field(default_factory=list)


class AskResponse(ReadModel):
    # The LLM's answer; null without an LLM, or when the LLM failed (see the trace).
    answer: str | None = None
    # The core blocks (profiles written by ``ingest``) of the asked scope — the filters'
    # user_id/agent_id, else the cube's — first: what an agent keeps in context always.
    core: list[MemoryRead] = Field(default_factory=list)
    evidence: list[Evidence]
    # What the evidence says about the question, one line each (LLM cues, or the
    # heuristic's covered aspects).
    cues: list[str] = Field(default_factory=list)
    mode: Literal["heuristic", "llm"]
    cycles: int
    llm_calls: int = 0
    tokens: int = 0
    stopped: Stopped | None = None
    took_ms: float
    trace_id: uuid.UUID


class TraceStep(ReadModel):
    """One step of an ask. Fields a step kind does not use stay null."""

    kind: StepKind
    cycle: int
    at_ms: float
    took_ms: float | None = None
    # retrieve / probe: the queries run and which layers they searched.
    queries: list[str] | None = None
    layers: list[str] | None = None
    # Memory ids found (retrieve / probe) or kept (fold / select), best first.
    found: list[uuid.UUID] | None = None
    new: int | None = None
    # gate: sufficient or not; llm: answered | probes | failed.
    decision: str | None = None
    # Aspects of the question covered / still missing after this step.
    covered: list[str] | None = None
    missing: list[str] | None = None
    # llm: prompt id (``ask_answer.v1``), model and tokens.
    prompt: str | None = None
    model: str | None = None
    tokens: int | None = None
    note: str | None = None
    error: str | None = None


class TraceRead(ReadModel):
    id: uuid.UUID
    cube_id: uuid.UUID
    question: str
    mode: str
    steps: list[TraceStep]
    evidence_ids: list[uuid.UUID]
    answer: str | None = None
    cues: list[str] = Field(default_factory=list)
    llm_calls: int
    tokens: int
    took_ms: float
    stopped: Stopped | None = None
    created_at: datetime
    expires_at: datetime
