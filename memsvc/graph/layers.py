"""Upkeep of the episodic and semantic layers: the ``summarise`` job's work.

One job summarises one *scope* of a cube (``memsvc.store.summaries``): a conversation
thread (its episodic windows) or ``"semantic"`` (the cube's clusters). In three steps, each
safe to repeat after a crash:

1. **plan** (one transaction): the scope's current windows or clusters, compared with the
   summaries written for them. Only those whose members changed (gained, lost, reordered,
   or a member's content edited) are due; the others are left alone.
2. **write** (no transaction open): the due summaries' texts (LLM or extractive) and their
   embeddings.
3. **store** (one transaction, under the scope's advisory lock): each due summary is
   created, or gets a new version, through the same store functions as any memory (actor
   ``system:summarise``, policy and model on the version) with ``memory_summary`` rows
   naming exactly its members; summaries whose window or cluster is gone are soft
   deleted. A window that changed again since step 1 is skipped: the write that changed
   it queued another job.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.graph.summarise import Summariser, Written, span
from memsvc.llm import Usage
from memsvc.schemas import MemoryCreate, MemoryUpdate
from memsvc.schemas.memories import SUMMARY_KIND
from memsvc.store import links as link_store
from memsvc.store import memories, summaries
from memsvc.store.db import Database
from memsvc.store.indexing import build_index_text
from memsvc.store.models import Memory
from memsvc.store.summaries import ACTOR, SEMANTIC, WINDOW, Existing, Member
from memsvc.store.versions import Change

Embed = Callable[[Sequence[str]], Awaitable[Any]]

# Semantic clusters: at least this many members; cubes above ``MAX_CLUSTERED`` active
# memories are not clustered (the pass holds an n x n similarity matrix: 36 MB at 3,000).
MIN_CLUSTER = 3
MAX_CLUSTER = 30
MAX_CLUSTERED = 3_000
# Edges of the cluster graph: the cube's live links, plus embedding neighbours (each
# memory's ``KNN`` nearest at cosine similarity >= ``MIN_SIM``), so a cube with few links
# still clusters. Always both: switching on a link count would reshuffle every cluster
# the moment the count crosses the line.
KNN = 3
MIN_SIM = 0.5
# An existing cluster summary is the one of a new cluster when they share this much
# (Jaccard of members); a cluster that grew by a few members keeps its summary.
SAME_CLUSTER = 0.5


@dataclass
class Due:
    """A summary to write: its window/cluster members and the summary it replaces."""

    index: int
    members: list[Member]
    old: Existing | None
    written: Written | None = None
    vector: Any = None


@dataclass
class Outcome:
    """What one job did (its ``job.result``)."""

    scope: str
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)
    skipped: int = 0
    fallbacks: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "written": self.written,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "skipped": self.skipped,
            **({"fallbacks": self.fallbacks} if self.fallbacks else {}),
        }


def _said(members: Sequence[Member]) -> tuple[tuple[uuid.UUID, str], ...]:
    return tuple((m.id, m.content) for m in members)


def _unchanged(old: Existing | None, members: Sequence[Member]) -> bool:
    """Nothing to write: the summary covers exactly these contents, or a client deleted it."""
    if old is None:
        return False
    return old.kept_deleted or (old.status == "active" and old.said == _said(members))


def _windows(members: list[Member]) -> list[list[Member]]:
    return [members[i : i + WINDOW] for i in range(0, len(members), WINDOW)]


async def _plan_thread(
    s: AsyncSession, tenant_id: uuid.UUID, cube_id: uuid.UUID, key: str
) -> tuple[list[Due], list[Existing], int]:
    thread = summaries.thread_from_key(key)
    mems = await summaries.thread_members(s, tenant_id=tenant_id, cube_id=cube_id, thread=thread)
    have = {
        e.window: e
        for e in await summaries.existing(s, tenant_id=tenant_id, cube_id=cube_id, key=key)
    }
    windows = _windows(mems)
    due = [
        Due(index=i, members=w, old=have.get(i))
        for i, w in enumerate(windows)
        if not _unchanged(have.get(i), w)
    ]
    gone = [e for i, e in have.items() if i >= len(windows) and e.status == "active"]
    return due, gone, len(windows) - len(due)


def _communities(
    ids: list[uuid.UUID], edges: list[tuple[uuid.UUID, uuid.UUID, float]]
) -> list[list[uuid.UUID]]:
    """Connected groups of related memories; one larger than ``MAX_CLUSTER`` is split into
    its Louvain communities (seeded). Components first because they are stable: a write
    changes only the component it joins, where a whole-graph Louvain pass may reshuffle
    clusters the write never touched (and every reshuffle is a summary rewritten)."""
    g: nx.Graph[uuid.UUID] = nx.Graph()
    g.add_nodes_from(ids)
    for a, b, w in edges:
        if a != b and a in g and b in g:
            g.add_edge(a, b, weight=max(w, 0.01))
    found: list[set[uuid.UUID]] = []
    for comp in nx.connected_components(g):
        if len(comp) <= MAX_CLUSTER:
            found.append(comp)
        else:
            found += nx.community.louvain_communities(g.subgraph(comp), weight="weight", seed=0)
    return sorted(
        (sorted(c, key=str) for c in found if len(c) >= MIN_CLUSTER), key=lambda c: str(c[0])
    )


def _knn_edges(
    ids: list[uuid.UUID], vectors: np.ndarray
) -> list[tuple[uuid.UUID, uuid.UUID, float]]:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    edges = []
    for i, row in enumerate(sims):
        for j in np.argsort(-row)[:KNN]:
            if row[j] >= MIN_SIM:
                edges.append((ids[i], ids[int(j)], float(row[j])))
    return edges


async def _clusters(
    s: AsyncSession, tenant_id: uuid.UUID, cube_id: uuid.UUID
) -> list[list[uuid.UUID]]:
    rows = (
        await s.execute(
            select(Memory.id, Memory.embedding)
            .where(
                Memory.tenant_id == tenant_id,
                Memory.cube_id == cube_id,
                Memory.status == "active",
                Memory.kind != SUMMARY_KIND,
            )
            .order_by(Memory.created_at, Memory.id)
            .limit(MAX_CLUSTERED + 1)
        )
    ).all()
    if len(rows) > MAX_CLUSTERED or len(rows) < MIN_CLUSTER:
        return []
    ids = [r.id for r in rows]
    links = await link_store.of_cube(s, tenant_id=tenant_id, cube_id=cube_id, max_edges=50_000)
    edges = [(e.source_id, e.target_id, e.weight) for e in links]
    have = [(r.id, r.embedding) for r in rows if r.embedding is not None]
    if have:
        vecs = np.asarray([np.asarray(v, dtype=np.float32) for _, v in have])
        edges += await asyncio.to_thread(_knn_edges, [i for i, _ in have], vecs)
    return await asyncio.to_thread(_communities, ids, edges)


def _jaccard(a: set[uuid.UUID], b: set[uuid.UUID]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


async def _plan_clusters(
    s: AsyncSession, tenant_id: uuid.UUID, cube_id: uuid.UUID
) -> tuple[list[Due], list[Existing], int]:
    clusters = await _clusters(s, tenant_id, cube_id)
    have = await summaries.existing(s, tenant_id=tenant_id, cube_id=cube_id, key=SEMANTIC)
    free = {e.id: e for e in have}
    due: list[Due] = []
    unchanged = 0
    for i, ids in enumerate(clusters):
        members = await summaries.members_by_id(s, tenant_id=tenant_id, ids=ids)
        mine = {m.id for m in members}
        best = max(
            free.values(),
            key=lambda e: (_jaccard(mine, {mid for mid, _ in e.covers}), str(e.id)),
            default=None,
        )
        if best is not None and _jaccard(mine, {mid for mid, _ in best.covers}) < SAME_CLUSTER:
            best = None
        if best is not None:
            del free[best.id]
        if _unchanged(best, members):
            unchanged += 1
            continue
        due.append(Due(index=i, members=members, old=best))
    return due, [e for e in free.values() if e.status == "active"], unchanged


async def _store(
    s: AsyncSession,
    d: Due,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    key: str,
    layer: str,
    embedding_model: str,
) -> str:
    """Create or re-version one summary; its id."""
    assert d.written is not None
    w = d.written
    start, end = span(d.members)
    meta = {
        "summary": {
            "key": key,
            "window": d.index,
            "members": len(d.members),
            "from": start.isoformat() if start else None,
            "to": end.isoformat() if end else None,
        }
    }
    sessions = {m.session_id for m in d.members}
    users = {m.user_id for m in d.members}
    agents = {m.agent_id for m in d.members}
    fields: dict[str, Any] = {
        "content": w.content,
        "metadata": meta,
        "session_id": sessions.pop() if len(sessions) == 1 else None,
        "user_id": users.pop() if len(users) == 1 else None,
        "agent_id": agents.pop() if len(agents) == 1 else None,
        "valid_from": start,
    }
    reason = f"llm fallback: {w.fallback}" if w.fallback else None
    change = Change(
        actor=ACTOR, change_kind="create", policy=w.policy, model=w.model, reason=reason
    )
    index_text = build_index_text(w.content)
    covers = [(m.id, m.version) for m in d.members]
    if d.old is None:
        [read] = await memories.create_many(
            s,
            tenant_id=tenant_id,
            cube_id=cube_id,
            items=[
                memories.NewMemory(
                    data=MemoryCreate(kind=SUMMARY_KIND, layer=layer, **fields),
                    index_text=index_text,
                    embedding=d.vector,
                )
            ],
            change=change,
            embedding_model=embedding_model,
            enqueue_enrichment=False,
        )
        sid, version = read.id, read.version
    else:
        sid, version = d.old.id, d.old.version
        if d.old.status != "active":
            restored = await memories.set_status(
                s,
                tenant_id=tenant_id,
                memory_id=sid,
                status="active",
                change=Change(actor=ACTOR, change_kind="restore"),
            )
            version = restored.version
        read = await memories.update_memory(
            s,
            tenant_id=tenant_id,
            memory_id=sid,
            data=MemoryUpdate(expected_version=version, **fields),
            change=Change(
                actor=ACTOR, change_kind="update", policy=w.policy, model=w.model, reason=reason
            ),
            version=version,
            index_text=index_text,
            embedding=d.vector,
            embedding_model=embedding_model,
        )
        version = read.version
    await summaries.record(
        s,
        tenant_id=tenant_id,
        cube_id=cube_id,
        summary_id=sid,
        summary_version=version,
        covers=covers,
    )
    return str(sid)


async def summarise(
    db: Database,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    scope: str,
    summariser: Summariser,
    embed: Embed,
    embedding_model: str,
    usage: Usage,
) -> Outcome:
    """Bring the summaries of one scope (a thread key, or ``"semantic"``) up to date."""
    semantic = scope == SEMANTIC
    layer = "semantic" if semantic else "episodic"
    out = Outcome(scope=scope)
    async with db.tenant_transaction(tenant_id) as s:
        if semantic:
            due, gone, out.unchanged = await _plan_clusters(s, tenant_id, cube_id)
        else:
            due, gone, out.unchanged = await _plan_thread(s, tenant_id, cube_id, scope)
    for d in due:
        d.written = await summariser.write(d.members, layer=layer, usage=usage)
        if d.written.fallback:
            out.fallbacks[str(d.index)] = d.written.fallback
    if due:
        vectors = await embed([build_index_text(d.written.content) for d in due if d.written])
        for d, v in zip(due, vectors, strict=True):
            d.vector = v
    async with db.tenant_transaction(tenant_id) as s:
        await summaries.lock_key(s, cube_id, scope)
        now = {
            e.id: e
            for e in await summaries.existing(s, tenant_id=tenant_id, cube_id=cube_id, key=scope)
        }
        for d in due:
            if d.old is not None and now.get(d.old.id) != d.old:
                out.skipped += 1  # changed since the plan: a later job has it
                continue
            if d.old is None and not semantic and any(e.window == d.index for e in now.values()):
                out.skipped += 1  # another job wrote this window meanwhile
                continue
            out.written.append(
                await _store(
                    s,
                    d,
                    tenant_id=tenant_id,
                    cube_id=cube_id,
                    key=scope,
                    layer=layer,
                    embedding_model=embedding_model,
                )
            )
        for e in gone:
            if now.get(e.id) == e:
                await memories.set_status(
                    s,
                    tenant_id=tenant_id,
                    memory_id=e.id,
                    status="deleted",
                    change=Change(
                        actor=ACTOR, change_kind="delete", reason="window or cluster gone"
                    ),
                )
                out.deleted.append(str(e.id))
    return out
