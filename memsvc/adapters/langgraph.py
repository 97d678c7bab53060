"""A LangGraph ``BaseStore`` on memsvc (``pip install 'memsvc[langgraph]'``).

Every item is one memory of one cube: its value in ``metadata["langgraph"]`` (with its
namespace and key), a text of it as the content (so ``search(query=...)`` is memsvc's
hybrid search), and opaque tags that make lookups exact filters: one for the
(namespace, key) pair and one for each prefix of the namespace, the empty one included.
A put over an existing key appends a version (its history stays readable in memsvc); a
delete is memsvc's soft delete. Items are written with ``enrich=False``: they are the
agent's own records, not notes to be linked and evolved.

``batch`` runs on a sync ``MemoryClient``; ``abatch`` runs the same operations in a worker
thread, so one implementation serves LangGraph's sync and async graphs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import anyio
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from memsvc.errors import Conflict
from memsvc.schemas import MemoryCreate, MemoryRead, SearchFilters
from memsvc.sdk import MemoryClient
from memsvc.sdk._types import ID

KIND = "langgraph_item"
META = "langgraph"
# Text fields used as the memory's content when a value has one (else its JSON).
TEXT_FIELDS = ("content", "text", "memory", "data")
# How many hits a query search takes before value filters and offset apply.
SEARCH_DEPTH = 100


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:24]


def key_tag(namespace: tuple[str, ...], key: str) -> str:
    """The tag of one (namespace, key)."""
    return f"lgk:{_digest(list(namespace), key)}"


def prefix_tag(prefix: tuple[str, ...]) -> str:
    """The tag every item under ``prefix`` carries."""
    return f"lgp:{_digest(list(prefix))}"


def content_of(value: dict[str, Any]) -> str:
    """What memsvc embeds and indexes for a value."""
    for name in TEXT_FIELDS:
        text = value.get(name)
        if isinstance(text, str) and text.strip():
            return text
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _matches(value: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    """LangGraph's value filters: equality, or ``{"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": x}``."""
    for name, want in (filters or {}).items():
        have = value.get(name)
        if isinstance(want, dict) and want and all(k.startswith("$") for k in want):
            for op, x in want.items():
                if not _compare(op, have, x):
                    return False
        elif have != want:
            return False
    return True


def _compare(op: str, have: Any, x: Any) -> bool:
    try:
        return {
            "$eq": lambda: have == x,
            "$ne": lambda: have != x,
            "$gt": lambda: have > x,
            "$gte": lambda: have >= x,
            "$lt": lambda: have < x,
            "$lte": lambda: have <= x,
        }[op]() is True
    except (KeyError, TypeError):
        return False


def _ns_matches(namespace: tuple[str, ...], cond: MatchCondition) -> bool:
    path = tuple(cond.path)
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if cond.match_type == "prefix" else namespace[-len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True)) if path else True


class MemsvcStore(BaseStore):
    """LangGraph long-term memory in one memsvc cube, through the SDK client."""

    def __init__(self, client: MemoryClient, cube_id: ID, *, timeout: float | None = None) -> None:
        self.client = client
        self.cube_id = cube_id
        self.timeout = timeout

    # -- BaseStore --------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order; results line up with them."""
        return [self._one(op) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch`` in a worker thread (the sync client's calls block)."""
        todo = list(ops)
        return await anyio.to_thread.run_sync(self.batch, todo)

    # -- operations -------------------------------------------------------------------

    def _one(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            found = self._find(op.namespace, op.key)
            return self._item(found) if found is not None else None
        if isinstance(op, PutOp):
            self._put(op)
            return None
        if isinstance(op, SearchOp):
            return self._search(op)
        if isinstance(op, ListNamespacesOp):
            return self._namespaces(op)
        raise TypeError(f"unknown store operation {type(op).__name__}")

    def _find(self, namespace: tuple[str, ...], key: str) -> MemoryRead | None:
        tag = key_tag(tuple(namespace), key)
        page = self.client.list_memories(self.cube_id, tag=tag, limit=1, timeout=self.timeout)
        return page.items[0] if page.items else None

    def _put(self, op: PutOp) -> None:
        namespace = tuple(op.namespace)
        for _ in range(3):  # a concurrent put of the same key: read again and redo
            current = self._find(namespace, op.key)
            try:
                if op.value is None:
                    if current is not None:
                        self.client.delete_memory(current.id, timeout=self.timeout)
                    return
                value = dict(op.value)
                meta = {META: {"namespace": list(namespace), "key": op.key, "value": value}}
                if current is None:
                    self._create(namespace, op.key, value, meta)
                else:
                    self.client.update_memory(
                        current.id,
                        expected_version=current.version,
                        content=content_of(value),
                        metadata=meta,
                        timeout=self.timeout,
                    )
                return
            except Conflict:
                continue
        raise Conflict(f"item {namespace}/{op.key} kept changing while being written")

    def _create(
        self, namespace: tuple[str, ...], key: str, value: dict[str, Any], meta: dict[str, Any]
    ) -> None:
        tags = [key_tag(namespace, key)]
        tags += [prefix_tag(namespace[:i]) for i in range(len(namespace) + 1)]
        memory = MemoryCreate(content=content_of(value), kind=KIND, tags=tags, metadata=meta)
        # The client's own Idempotency-Key makes its retries of this put apply once.
        self.client.add_many(self.cube_id, [memory], enrich=False, timeout=self.timeout)

    def _under(self, prefix: tuple[str, ...]) -> Iterator[MemoryRead]:
        return self.client.iter_memories(
            self.cube_id, tag=prefix_tag(prefix), page_size=200, timeout=self.timeout
        )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        scored: list[tuple[MemoryRead, float | None]]
        if op.query:
            hits = self.client.search(
                self.cube_id,
                op.query,
                top_k=max(SEARCH_DEPTH, op.offset + op.limit),
                filters=SearchFilters(tags=[prefix_tag(prefix)]),
                timeout=self.timeout,
            ).results
            scored = [(h.memory, h.score) for h in hits]
        else:
            # Like LangGraph's own stores: most recently updated first.
            found = sorted(self._under(prefix), key=lambda m: m.updated_at, reverse=True)
            scored = [(m, None) for m in found]
        out: list[SearchItem] = []
        for memory, score in scored:
            item = self._item(memory)
            if item is None or item.namespace[: len(prefix)] != prefix:
                continue
            if _matches(item.value, op.filter):
                out.append(SearchItem(*_fields(item), score=score))
        return out[op.offset : op.offset + op.limit]

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        seen: set[tuple[str, ...]] = set()
        for memory in self._under(()):
            item = self._item(memory)
            if item is None:
                continue
            ns = item.namespace
            if not all(_ns_matches(ns, c) for c in op.match_conditions or ()):
                continue
            seen.add(ns[: op.max_depth] if op.max_depth is not None else ns)
        return sorted(seen)[op.offset : op.offset + op.limit]

    @staticmethod
    def _item(memory: MemoryRead) -> Item | None:
        meta = memory.metadata.get(META)
        if not isinstance(meta, dict):
            return None
        return Item(
            value=dict(meta.get("value") or {}),
            key=str(meta.get("key")),
            namespace=tuple(meta.get("namespace") or ()),
            created_at=memory.created_at,
            updated_at=memory.updated_at,
        )


def _fields(item: Item) -> tuple[tuple[str, ...], str, dict[str, Any], datetime, datetime]:
    return item.namespace, item.key, item.value, item.created_at, item.updated_at
