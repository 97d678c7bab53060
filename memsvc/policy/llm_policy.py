"""The ``llm`` write policy (issue 11): a prompted model decides a batch in one call.

The model sees the batch's messages (numbered by their index in the request), the cube's
memories nearest to them (the union of the situations' neighbours, shown as ``m1``,
``m2``, ... because models copy short handles reliably and UUIDs not), the thread's last
memory and the scope's core block, and answers with Mem-alpha's tool vocabulary
(``prompts/ingest_decide.v1.md.j2``)::

    {"operations": [
      {"op": "memory_insert", "message": [0, 1], "layer": "episodic", "content": "...",
       "reason": "..."},
      {"op": "memory_update", "message": 2, "layer": "semantic", "memory_id": "m3",
       "content": "..."},
      {"op": "memory_delete", "message": 3, "layer": "semantic", "memory_id": "m4"},
      {"op": "merge", "message": 4, "memory_id": "m1", "content": "..."},
      {"op": "skip", "message": [5, 6], "reason": "small talk"}]}

Each operation names the messages it comes from; every message must be named exactly once
or the output is invalid (the wrapper's one repair call asks again, then
:class:`~memsvc.llm.errors.LLMOutputInvalid` is raised: no decision is ever invented).
One operation over several messages makes one memory of them: the first (lowest index)
message gets the operation, the others ``merge`` into it (``target_message``); a
``merge`` with ``memory_id`` (only the thread's last memory) folds the messages into that
stored memory; ``memory_delete`` over several messages: the first deletes, the others
skip. ``content`` on a merge decision is the merged memory's whole text as the model wrote
it. Layer ``core``: ``memory_insert`` adds a line to the core block, ``memory_update``
without ``memory_id`` replaces the block with ``content``.

A Mem-alpha checkpoint behind an OpenAI-compatible endpoint answers with function calls
instead: OpenAI ``tool_calls`` or ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``
text (Qwen/Hermes). :func:`parse_tool_calls` reads both (and the JSON above). Those calls
name no message, so each is attributed to the not yet covered message whose words it
shares most (ties: the earlier message); messages no call is attributed to are skipped,
and more calls than messages is invalid output.

Large batches are decided in chunks of at most ``chunk_size`` messages, one call each;
a chunk sees only its own situations' neighbours (and merges only within itself).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)

from memsvc.llm.client import LLM, Usage
from memsvc.llm.prompts import Prompt
from memsvc.policy.decide import Batch, Decision, Neighbour, PolicyLayer, Situation

LAYERS: tuple[PolicyLayer, ...] = get_args(PolicyLayer)
OpName = Literal["memory_insert", "memory_update", "memory_delete", "merge", "skip"]
_OP_ALIASES = {"insert": "memory_insert", "update": "memory_update", "delete": "memory_delete"}

# Prompt size bounds (characters): a long message keeps its head and its end.
MAX_MESSAGE_CHARS = 1500
MAX_MEMORY_CHARS = 400
MAX_CORE_CHARS = 2000
MAX_REASON_CHARS = 300


def clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: head, a marker with what was cut, the end."""
    text = text.strip()
    if len(text) <= limit:
        return text
    tail = limit // 5
    head, end = text[: limit - tail], text[-tail:]
    # Whole words at the cut, where the text has spaces to cut at.
    head = head.rsplit(None, 1)[0] if " " in head.strip() else head
    end = end.split(None, 1)[-1] if " " in end.strip() else end
    cut = len(text) - len(head) - len(end)
    return f"{head.rstrip()} [... {cut} characters cut ...] {end.lstrip()}"


# -- the prompt: context ------------------------------------------------------------------


class MessageView(BaseModel):
    index: int
    speaker: str
    time: str | None = None
    text: str


class MemoryView(BaseModel):
    id: str  # the handle shown to the model: m1, m2, ...
    layer: str
    kind: str
    date: str | None = None
    text: str


class IngestDecideContext(BaseModel):
    messages: list[MessageView]
    memories: list[MemoryView]
    core: str
    # The handle of the memory written last from this thread (a merge target), if shown.
    last_memory: str | None = None


# -- the prompt: response (the JSON above, OpenAI tool_calls, or <tool_call> text) ---------


class Op(BaseModel):
    """One operation; Mem-alpha's argument names (memory_type, new_content) are accepted."""

    model_config = ConfigDict(extra="ignore")

    op: OpName
    # The message indexes it covers; None: a tool call that names no message.
    message: list[int] | None = None
    layer: PolicyLayer | None = None
    memory_id: str | None = None
    content: str | None = None
    reason: str = ""

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        d = dict(data)
        if "op" not in d and "name" in d:
            d["op"] = d.pop("name")
        if isinstance(d.get("op"), str):
            d["op"] = _OP_ALIASES.get(d["op"].strip().lower(), d["op"].strip().lower())
        for alias, key in (("messages", "message"), ("memory_type", "layer")):
            if d.get(key) is None and alias in d:
                d[key] = d.pop(alias)
        if d.get("content") is None and "new_content" in d:
            d["content"] = d.pop("new_content")
        if isinstance(d.get("message"), int):
            d["message"] = [d["message"]]
        if isinstance(d.get("layer"), str):
            d["layer"] = d["layer"].strip().lower()
        if d.get("memory_id") is not None:
            d["memory_id"] = str(d["memory_id"]).strip()
        return d

    @field_validator("content")
    @classmethod
    def _content(cls, v: str | None) -> str | None:
        return None if v is None else v.strip()

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        return " ".join(v.split())[:MAX_REASON_CHARS]


class IngestDecideResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    operations: list[Op] = Field(max_length=400)
    # True when the reply came as function calls (no message indexes): see the module doc.
    _tool_form: bool = PrivateAttr(default=False)

    @model_validator(mode="wrap")
    @classmethod
    def _forms(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if isinstance(data, cls):
            return data
        if isinstance(data, str | bytes):
            data = _decode(data if isinstance(data, str) else data.decode())
        if isinstance(data, dict) and "operations" in data:
            ops, tool_form = data["operations"], False
        else:
            calls = _calls_of(data)
            ops = [_call_to_op(c) for c in calls]
            # A bare list of our own operations is held to the same rules as the object.
            tool_form = not calls or not all(isinstance(c, dict) and "op" in c for c in calls)
        parsed = handler({"operations": ops})
        parsed._tool_form = tool_form
        return parsed

    @property
    def tool_form(self) -> bool:
        return self._tool_form


_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def _calls_of(data: Any) -> list[Any]:
    """The function calls in a decoded reply (OpenAI ``tool_calls``, a list, or one call)."""
    if isinstance(data, dict) and "tool_calls" in data:
        data = data["tool_calls"]
    if isinstance(data, dict) and ("name" in data or "function" in data):
        data = [data]
    if not isinstance(data, list):
        raise ValueError("expected {'operations': [...]}, tool_calls or a list of calls")
    return data


def _call_to_op(call: Any) -> Any:
    """An op dict from one call: ``{"function": {"name", "arguments"}}``,
    ``{"name", "arguments"}`` or already an op (``{"op": ...}``)."""
    if not isinstance(call, dict) or "op" in call:
        return call
    fn = call.get("function", call)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ValueError(f"not a function call: {str(call)[:200]}")
    args = fn.get("arguments") or {}
    if isinstance(args, str):
        args = json.loads(args) if args.strip() else {}
    if not isinstance(args, dict):
        raise ValueError(f"{fn['name']}: arguments are not an object")
    name = fn["name"]
    if name not in get_args(OpName):
        raise ValueError(f"unknown function {name!r}; use memory_insert/update/delete")
    return {**args, "op": name}


def _decode(raw: str) -> Any:
    """A reply's JSON: ``<tool_call>`` blocks as a list of calls, else the JSON in the text."""
    text = raw.strip()
    blocks = _TOOL_CALL.findall(text)
    if blocks:
        return [json.loads(b) for b in blocks if b]
    text = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", text)
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ValueError("the reply contains no JSON and no <tool_call> block")
    start = min(starts)
    end = text.rfind("}" if text[start] == "{" else "]")
    if end < start:
        raise ValueError("the reply contains no complete JSON value")
    return json.loads(text[start : end + 1])


def parse_tool_calls(raw: str | list[dict[str, Any]]) -> list[Op]:
    """Operations from the JSON shape above, OpenAI ``tool_calls`` or ``<tool_call>`` text."""
    data = _decode(raw) if isinstance(raw, str) else raw
    return IngestDecideResponse.model_validate(data).operations


@dataclass(frozen=True)
class _OpsPrompt(Prompt[IngestDecideContext, IngestDecideResponse]):
    """The prompt whose parse also reads function calls (the model may answer in them)."""

    def parse(self, raw: str) -> IngestDecideResponse:
        return self.response.model_validate(_decode(raw))


INGEST_DECIDE = _OpsPrompt(
    name="ingest_decide",
    version=1,
    context=IngestDecideContext,
    response=IngestDecideResponse,
    example=IngestDecideContext(
        messages=[
            MessageView(index=0, speaker="Caroline", time="2023-05-08 14:02", text="Hi Mel!"),
            MessageView(
                index=1,
                speaker="Caroline",
                time="2023-05-08 14:03",
                text="I moved to Lisbon last week, the new flat is near the river.",
            ),
            MessageView(
                index=2,
                speaker="Caroline",
                time="2023-05-08 14:03",
                text="And I adopted a golden retriever, Max!",
            ),
        ],
        memories=[
            MemoryView(
                id="m1",
                layer="semantic",
                kind="fact",
                date="2023-01-10",
                text="Caroline lives in Berlin.",
            ),
            MemoryView(
                id="m2",
                layer="episodic",
                kind="event",
                date="2023-05-01",
                text="Caroline told Melanie she is packing for a move.",
            ),
        ],
        core="Caroline: counsellor, likes hiking.",
        last_memory="m2",
    ),
)


# -- from a validated response to one decision per message --------------------------------


@dataclass(frozen=True)
class _View:
    """What one chunk's prompt showed: its messages and the memories by handle."""

    situations: Sequence[Situation]
    memories: dict[str, Neighbour]  # handle -> memory
    last_memory: str | None

    def resolve(self, memory_id: str, where: str) -> tuple[str, Neighbour]:
        if memory_id in self.memories:
            return memory_id, self.memories[memory_id]
        for handle, n in self.memories.items():
            if str(n.id) == memory_id:
                return handle, n
        raise ValueError(f"{where}: memory_id {memory_id!r} is not one of the memories shown")


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if len(w) > 2}


def _attribute(text: str, open_: list[int], texts: dict[int, str]) -> int:
    """The uncovered message sharing most words with ``text`` (ties: the earlier)."""
    words = _words(text)
    return max(open_, key=lambda i: (len(words & _words(texts[i])), -i))


def _layer_of(op: Op, memory: Neighbour | None) -> PolicyLayer | None:
    if op.layer is not None:
        return op.layer
    if memory is not None and memory.layer in LAYERS:
        return memory.layer
    return None


def _check_op(op: Op, view: _View, where: str, changed: set[str]) -> Neighbour | None:
    """The memory ``op`` changes (None for none); raises on a semantic error."""
    if op.op in ("memory_insert", "memory_update") and not op.content:
        raise ValueError(f"{where}: {op.op} needs a non-empty content")
    if op.op == "memory_insert" and op.layer is None:
        raise ValueError(f"{where}: memory_insert needs a layer (core, semantic or episodic)")
    core_rewrite = op.op == "memory_update" and op.layer == "core" and not op.memory_id
    if op.op in ("memory_update", "memory_delete") and not op.memory_id and not core_rewrite:
        raise ValueError(f"{where}: {op.op} needs the memory_id of a memory shown")
    if op.op == "merge" and op.memory_id and not op.content:
        raise ValueError(f"{where}: merge into a memory needs the merged content")
    if not op.memory_id or op.op not in ("memory_update", "memory_delete", "merge"):
        return None
    handle, memory = view.resolve(op.memory_id, where)
    if op.op == "merge" and handle != view.last_memory:
        raise ValueError(
            f"{where}: merge can only fold into the last memory of this conversation "
            f"({view.last_memory or 'none shown'}); use memory_update for {handle}"
        )
    if handle in changed:
        raise ValueError(f"{where}: memory {handle} is changed by more than one operation")
    changed.add(handle)
    return memory


def _group(op: Op, memory: Neighbour | None, members: list[int]) -> list[Decision]:
    """One decision per message of an operation's group, the first carrying the op."""
    first, rest = members[0], members[1:]
    layer = _layer_of(op, memory)
    target = memory.id if memory is not None else None
    reason = op.reason or op.op
    if op.op == "skip":
        return [Decision("skip", reason=reason) for _ in members]
    if op.op == "memory_delete":
        head = Decision("delete", layer=layer, target_id=target, reason=reason)
        same = f"retracts the same memory as message {first}"
        return [head, *(Decision("skip", reason=same) for _ in rest)]
    if op.op == "memory_insert" or (op.op == "merge" and memory is None):
        head = Decision("insert", layer=layer, content=op.content or None, reason=reason)
    elif op.op == "memory_update":
        head = Decision("update", layer=layer, target_id=target, content=op.content, reason=reason)
    else:
        head = Decision("merge", layer=layer, target_id=target, content=op.content, reason=reason)
    merged = [
        Decision("merge", layer=layer, target_message=first, content=head.content, reason=reason)
        for _ in rest
    ]
    return [head, *merged]


def plan(response: IngestDecideResponse, view: _View) -> list[Decision]:
    """One decision per message of ``view``, in order; ValueError when the output is invalid
    (an index out of range or covered twice, a memory not shown, a message left out...)."""
    texts = {s.message.index: s.message.content for s in view.situations}
    covered: dict[int, Decision] = {}
    changed: set[str] = set()
    # Operations that name their messages first: the others are attributed to what is left.
    numbered = sorted(enumerate(response.operations), key=lambda ko: ko[1].message is None)
    for k, op in numbered:
        where = f"operations[{k}]"
        memory = _check_op(op, view, where, changed)
        if op.message is None:
            if not response.tool_form:
                raise ValueError(f"{where}: names no message; give its message index(es)")
            open_ = [i for i in texts if i not in covered]
            if not open_:
                raise ValueError(f"{where}: more operations than messages ({len(texts)})")
            text = op.content or (memory.content if memory else "")
            members = [_attribute(text, open_, texts)]
        else:
            members = sorted(set(op.message))
            if not members or len(members) != len(op.message):
                raise ValueError(f"{where}: message lists an index twice or none")
            for i in members:
                if i not in texts:
                    raise ValueError(f"{where}: message {i} is not one of {sorted(texts)}")
                if i in covered:
                    raise ValueError(f"{where}: message {i} is already covered by another op")
        for i, d in zip(members, _group(op, memory, members), strict=True):
            d.features["group_size"] = float(len(members))
            covered[i] = d
    missing = [i for i in texts if i not in covered]
    if missing and not response.tool_form:
        raise ValueError(f"messages {missing} are not covered; give each exactly one operation")
    for i in missing:
        covered[i] = Decision("skip", reason="not named by the model's function calls")
    return [covered[s.message.index] for s in view.situations]


# -- the policy -----------------------------------------------------------------------------


def _when(s: Situation) -> str | None:
    ts = s.message.timestamp
    return ts.strftime("%Y-%m-%d %H:%M") if ts else None


def _context(
    situations: Sequence[Situation], core: str, max_memories: int, with_last: bool
) -> tuple[IngestDecideContext, _View]:
    """The prompt context for one chunk and what it showed (memory handles)."""
    best: dict[uuid.UUID, Neighbour] = {}
    for s in situations:
        for n in s.neighbours:
            if n.id not in best or n.similarity > best[n.id].similarity:
                best[n.id] = n
    last = situations[0].last_memory if with_last else None
    ranked = sorted(best.values(), key=lambda n: -n.similarity)
    shown = ([last] if last else []) + [n for n in ranked if not last or n.id != last.id]
    shown = shown[: max_memories + (1 if last else 0)]
    handles = {f"m{j}": n for j, n in enumerate(shown, start=1)}
    memories = [
        MemoryView(
            id=h,
            layer=n.layer,
            kind=n.kind,
            date=n.occurred_at.date().isoformat() if n.occurred_at else None,
            text=clip(n.content, MAX_MEMORY_CHARS),
        )
        for h, n in handles.items()
    ]
    messages = [
        MessageView(
            index=s.message.index,
            speaker=s.message.speaker,
            time=_when(s),
            text=clip(s.message.content, MAX_MESSAGE_CHARS),
        )
        for s in situations
    ]
    last_handle = "m1" if last else None
    ctx = IngestDecideContext(
        messages=messages,
        memories=memories,
        core=clip(core, MAX_CORE_CHARS),
        last_memory=last_handle,
    )
    return ctx, _View(situations=situations, memories=handles, last_memory=last_handle)


class LLMPolicy:
    """Write policy ``llm``: one prompted call per chunk of at most ``chunk_size`` messages."""

    name: str = "llm"
    version: int = INGEST_DECIDE.version

    def __init__(
        self,
        llm: LLM,
        *,
        usage: Usage | None = None,
        chunk_size: int = 20,
        max_memories: int = 30,
    ) -> None:
        if chunk_size < 1 or max_memories < 0:
            raise ValueError("chunk_size must be >= 1 and max_memories >= 0")
        self.llm = llm
        self.usage = usage
        self.chunk_size = chunk_size
        self.max_memories = max_memories

    async def decide(self, batch: Batch) -> list[Decision]:
        """One decision per message; raises the LLM's error when a chunk cannot be decided."""
        usage = self.usage if self.usage is not None else Usage()
        out: list[Decision] = []
        sits = list(batch.situations)
        for k, start in enumerate(range(0, len(sits), self.chunk_size)):
            chunk = sits[start : start + self.chunk_size]
            ctx, view = _context(chunk, batch.core, self.max_memories, with_last=k == 0)
            before = usage.calls

            def check(r: IngestDecideResponse, view: _View = view) -> None:
                plan(r, view)

            response = await self.llm.run(INGEST_DECIDE, ctx, usage=usage, check=check)
            decisions = plan(response, view)
            for d in decisions:
                d.features.update(
                    llm_calls=float(usage.calls - before),
                    chunk=float(k),
                    memories_shown=float(len(view.memories)),
                    tool_form=float(response.tool_form),
                )
            out.extend(decisions)
        return out
