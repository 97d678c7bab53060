"""A-MEM enrichment on LoCoMo: throughput, links per memory, and what the graph channel
does to retrieval.

    python bench/enrich.py --locomo FILE [--lme FILE] --out OUT.json [--llm-fake-turns N]

(``--data`` is ``--locomo``'s old name.)

1. Every turn becomes a memory (as in bench/locomo.py: one batch per session, the turn
   as source with its session date) in a fresh embedded instance; no in-process worker.
2. Heuristic enrichment (no LLM) runs with one ``Worker`` over all enrich jobs: memories/s,
   links per memory and per relation, notes per memory.
3. Every question (categories 1-4) is searched with the ``hybrid`` preset with and without
   its graph channel: recall@10 / NDCG@10 per README's metric, so the delta is the graph's.
4. The graph itself (``graph``, per dataset): share of memories with at least one link,
   links per memory, precision (share of links whose two ends are evidence of one
   question), share of pairs of one question's evidence memories within 2 hops, and the
   largest connected component (memories, and share of its cube).
5. With ``--lme FILE``: the first ``--lme-questions`` LongMemEval questions, each in its own
   cube with its answer sessions and ``--lme-sessions`` other sessions of its haystack
   (every turn a memory, ``external_id`` "<session>#<turn>"), enriched the same way; the
   ``has_answer`` turns are the evidence. Graph measures only (the full haystacks are too
   large to enrich in a benchmark run).
6. With ``--llm-fake-turns N``: N turns of the first conversation go into a new cube and
   are enriched in LLM mode through litellm with a scripted fake provider (valid JSON,
   one link per note): LLM calls and tokens per insert. Only the call count is meaningful.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import local_instance
from locomo import memory_of, ndcg, normalise_evidence, turns_in_rank_order, turns_of

from memsvc.config import JobSettings, LLMSettings, Settings
from memsvc.graph import builders
from memsvc.jobs.worker import Worker
from memsvc.retrieval.presets import PRESETS
from memsvc.schemas import MemoryCreate, SearchRequest
from memsvc.sdk import MemoryClient
from memsvc.store.db import Database

# The heuristic thresholds (graph/linking.py; in builders before issue 17).
knobs: Any
try:
    knobs = importlib.import_module("memsvc.graph.linking")
except ImportError:
    knobs = builders


async def enrich_all(db_url: str, settings: Settings, llm: Any = None) -> tuple[int, float]:
    db = Database.connect(db_url)
    try:
        worker = Worker(db, settings, llm=llm, worker_id="bench")
        started = time.perf_counter()
        n = await worker.run_until_idle()
        return n, time.perf_counter() - started
    finally:
        await db.close()


async def graph_stats(db_url: str, cube_ids: list[str]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from memsvc.store.models import Link, Memory, MemoryVersion

    db = Database.connect(db_url)
    try:
        async with db.transaction() as s:
            cubes = [uuid.UUID(c) for c in cube_ids]
            mems = (
                await s.execute(select(func.count()).where(Memory.cube_id.in_(cubes)))
            ).scalar_one()
            rel = Counter(
                dict(
                    (
                        await s.execute(
                            select(Link.relation, func.count())
                            .where(Link.cube_id.in_(cubes), Link.status == "active")
                            .group_by(Link.relation)
                        )
                    ).all()
                )
            )
            kinds = Counter(
                dict(
                    (
                        await s.execute(
                            select(MemoryVersion.change_kind, func.count())
                            .join(Memory, Memory.id == MemoryVersion.memory_id)
                            .where(Memory.cube_id.in_(cubes))
                            .group_by(MemoryVersion.change_kind)
                        )
                    ).all()
                )
            )
            status = Counter(
                dict(
                    (
                        await s.execute(
                            select(Memory.enrichment_status, func.count())
                            .where(Memory.cube_id.in_(cubes))
                            .group_by(Memory.enrichment_status)
                        )
                    ).all()
                )
            )
    finally:
        await db.close()
    links = sum(rel.values())
    return {
        "memories": mems,
        "links": links,
        # Each link touches two memories: this is the mean degree / 2.
        "links_per_memory": round(links / mems, 3) if mems else 0.0,
        "mean_degree": round(2 * links / mems, 3) if mems else 0.0,
        "links_by_relation": dict(sorted(rel.items())),
        "versions_by_change_kind": dict(sorted(kinds.items())),
        "enrichment_status": dict(sorted(status.items())),
    }


async def graph_measures(db_url: str, cube_evidence: dict[str, list[set[str]]]) -> dict[str, Any]:
    """The graph on its own terms; ``cube_evidence``: cube id -> evidence ids per question."""
    import networkx as nx
    from sqlalchemy import select

    from memsvc.store.models import Link, Memory, MemorySource, Source

    db = Database.connect(db_url)
    mems = links = linked = 0
    good = pairs = near = 0
    largest = 0
    largest_share: list[float] = []
    try:
        for cube, questions in cube_evidence.items():
            cid = uuid.UUID(cube)
            async with db.transaction() as s:
                rows = (
                    await s.execute(
                        select(Memory.id, Source.external_id)
                        .outerjoin(MemorySource, MemorySource.memory_id == Memory.id)
                        .outerjoin(Source, Source.id == MemorySource.source_id)
                        .where(Memory.cube_id == cid, Memory.status == "active")
                    )
                ).all()
                edges = (
                    await s.execute(
                        select(Link.source_id, Link.target_id).where(
                            Link.cube_id == cid, Link.status == "active"
                        )
                    )
                ).all()
            turn_of: dict[uuid.UUID, set[str]] = defaultdict(set)
            for mid, ext in rows:
                turn_of[mid].update([ext] if ext else [])
            mem_of: dict[str, set[uuid.UUID]] = defaultdict(set)
            for mid, turns in turn_of.items():
                for t in turns:
                    mem_of[t].add(mid)
            g = nx.Graph()
            g.add_nodes_from(turn_of)
            g.add_edges_from((a, b) for a, b in edges if a in turn_of and b in turn_of)
            mems += g.number_of_nodes()
            links += len(edges)
            linked += sum(1 for n in g.nodes if g.degree(n) > 0)
            # Memories -> the questions they are evidence of.
            q_of: dict[uuid.UUID, set[int]] = defaultdict(set)
            ev_mems: list[set[uuid.UUID]] = []
            for i, ev in enumerate(questions):
                ms = {m for t in ev for m in mem_of.get(t, ())}
                ev_mems.append(ms)
                for m in ms:
                    q_of[m].add(i)
            good += sum(1 for a, b in edges if q_of.get(a, set()) & q_of.get(b, set()))
            for ms in ev_mems:
                ordered = sorted(ms, key=str)
                for i, a in enumerate(ordered):
                    reach = nx.single_source_shortest_path_length(g, a, cutoff=2)
                    for b in ordered[i + 1 :]:
                        pairs += 1
                        near += b in reach
            comp = max((len(c) for c in nx.connected_components(g)), default=0)
            largest = max(largest, comp)
            largest_share.append(comp / g.number_of_nodes() if g.number_of_nodes() else 0.0)
    finally:
        await db.close()
    return {
        "memories": mems,
        "links": links,
        "linked_share": round(linked / mems, 4) if mems else 0.0,
        "links_per_memory": round(links / mems, 3) if mems else 0.0,
        "precision": round(good / links, 4) if links else 0.0,
        "evidence_pairs": pairs,
        "evidence_pairs_within_2_hops": round(near / pairs, 4) if pairs else 0.0,
        "largest_component": largest,
        "largest_component_share_mean": round(statistics.fmean(largest_share), 4)
        if largest_share
        else 0.0,
    }


def locomo_evidence(sample: dict[str, Any]) -> list[set[str]]:
    out = []
    for qa in sample["qa"]:
        ev = {normalise_evidence(e) for e in qa.get("evidence", [])}
        out.append({e for e in ev if e is not None})
    return out


def lme_load(
    client: MemoryClient, data: list[dict[str, Any]], questions: int, others: int
) -> dict[str, list[set[str]]]:
    """Each question's cube: its answer sessions plus ``others`` sessions around them."""
    from datetime import UTC, datetime

    from memsvc.schemas import SourceCreate

    out: dict[str, list[set[str]]] = {}
    for rec in data[:questions]:
        sessions = list(
            zip(
                rec["haystack_session_ids"],
                rec["haystack_dates"],
                rec["haystack_sessions"],
                strict=True,
            )
        )
        answer = set(rec["answer_session_ids"])
        keep = [x for x in sessions if x[0] in answer]
        keep += [x for x in sessions if x[0] not in answer][:others]
        keep.sort(key=lambda x: x[1])
        cube = client.create_cube(f"enrich-lme-{rec['question_id']}-{uuid.uuid4().hex[:6]}")
        evidence: set[str] = set()
        for sid, date, turns in keep:
            when = datetime.strptime(date[:10] + date[-6:], "%Y/%m/%d %H:%M").replace(tzinfo=UTC)
            items = []
            for i, t in enumerate(turns):
                ext = f"{sid}#{i}"
                if t.get("has_answer"):
                    evidence.add(ext)
                items.append(
                    MemoryCreate(
                        content=t["content"][:4000],
                        kind="message",
                        layer="episodic",
                        session_id=sid,
                        sources=[
                            SourceCreate(
                                kind="message",
                                external_id=ext,
                                speaker=t["role"],
                                occurred_at=when,
                                text=t["content"][:4000],
                            )
                        ],
                    )
                )
            if items:
                client.add_many(cube.id, items)
        out[str(cube.id)] = [evidence]
    return out


def recall(
    client: MemoryClient,
    cubes: dict[str, tuple[str, set[str]]],
    data: list[dict[str, Any]],
    config: Any,
) -> dict[str, Any]:
    r10: dict[int, list[float]] = defaultdict(list)
    n10: dict[int, list[float]] = defaultdict(list)
    for sample in data:
        cube_id, ids = cubes[sample["sample_id"]]
        for qa in sample["qa"]:
            cat = int(qa["category"])
            if cat == 5:
                continue
            ev = {normalise_evidence(e) for e in qa.get("evidence", [])}
            relevant = {e for e in ev if e is not None and e in ids}
            if not relevant:
                continue
            resp = client.search(
                cube_id, SearchRequest(query=qa["question"], top_k=10, config=config)
            )
            ranked = turns_in_rank_order(resp.results)[:10]
            r10[cat].append(len(relevant & set(ranked)) / len(relevant))
            n10[cat].append(ndcg(ranked, relevant, 10))

    def mean(xs: list[float]) -> float:
        return round(statistics.fmean(xs), 4) if xs else 0.0

    return {
        "recall@10": mean([x for c in (1, 2, 3, 4) for x in r10[c]]),
        "ndcg@10": mean([x for c in (1, 2, 3, 4) for x in n10[c]]),
        "recall@10_per_category": {str(c): mean(r10[c]) for c in sorted(r10)},
        "questions": sum(len(v) for v in r10.values()),
    }


def fake_script(messages: list[dict[str, Any]]) -> str:
    prompt = str(messages[1]["content"])
    if "building a note" in prompt:
        body = prompt.split('"""')[1]
        words = [w.strip(".,!?\"'") for w in body.split() if len(w) > 4][:5]
        return json.dumps({"keywords": words or ["note"], "tags": ["chat"], "context": "A turn."})
    return json.dumps(
        {
            "links": [{"candidate": 1, "relation": "related", "weight": 0.5, "reason": "close"}],
            "evolutions": [],
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--locomo", "--data", dest="data", required=True, type=Path)
    ap.add_argument("--lme", type=Path)
    ap.add_argument("--lme-questions", type=int, default=6)
    ap.add_argument("--lme-sessions", type=int, default=4)
    ap.add_argument("--no-weight-sweep", action="store_true")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--llm-fake-turns", type=int, default=0)
    ap.add_argument("--related-sim", type=float, default=knobs.RELATED_SIM)
    ap.add_argument("--entity-sim", type=float, default=knobs.ENTITY_MIN_SIM)
    ap.add_argument("--max-links", type=int, default=builders.HEURISTIC_MAX_LINKS)
    args = ap.parse_args()
    # Experiment knobs: the heuristic thresholds and the per-insert link cap.
    knobs.RELATED_SIM = args.related_sim
    knobs.ENTITY_MIN_SIM = args.entity_sim
    builders.HEURISTIC_MAX_LINKS = args.max_links
    data = json.loads(args.data.read_text())
    report: dict[str, Any] = {}
    with local_instance() as inst, MemoryClient(inst.url, inst.api_key, timeout=300) as client:
        assert inst.database_url is not None
        settings = Settings(
            database_url=inst.database_url,  # type: ignore[arg-type]
            jobs=JobSettings(backoff_base_s=0.0),
        )
        cubes: dict[str, tuple[str, set[str]]] = {}
        for sample in data:
            sid = sample["sample_id"]
            cube = client.create_cube(f"enrich-{sid}-{uuid.uuid4().hex[:6]}")
            by_session: dict[int, list[MemoryCreate]] = defaultdict(list)
            ids: set[str] = set()
            for n, when, turn in turns_of(sample["conversation"]):
                by_session[n].append(memory_of(sid, n, when, turn))
                ids.add(turn["dia_id"])
            for items in by_session.values():
                client.add_many(cube.id, items)
            cubes[sid] = (str(cube.id), ids)
        lme_cubes = (
            lme_load(
                client, json.loads(args.lme.read_text()), args.lme_questions, args.lme_sessions
            )
            if args.lme
            else {}
        )

        hybrid = PRESETS["hybrid"]
        no_graph = hybrid.model_copy(update={"graph": None})

        n, secs = asyncio.run(enrich_all(inst.database_url, settings))
        report["heuristic"] = {
            "related_sim": args.related_sim,
            "entity_sim": args.entity_sim,
            "max_links_per_insert": args.max_links,
            "jobs": n,
            "seconds": round(secs, 2),
            "memories_per_s": round(n / secs, 1) if secs else 0.0,
            **asyncio.run(graph_stats(inst.database_url, [c for c, _ in cubes.values()])),
        }
        locomo_ev = {cubes[x["sample_id"]][0]: locomo_evidence(x) for x in data}
        report["graph"] = {"locomo": asyncio.run(graph_measures(inst.database_url, locomo_ev))}
        if lme_cubes:
            report["graph"]["lme"] = asyncio.run(graph_measures(inst.database_url, lme_cubes))
        print(json.dumps(report, indent=2), flush=True)
        report["search_hybrid_without_graph"] = recall(client, cubes, data, no_graph)
        report["search_hybrid_with_graph"] = recall(client, cubes, data, hybrid)
        for w in () if args.no_weight_sweep else (0.25, 1.0):
            cfg = hybrid.model_copy(
                update={"graph": hybrid.graph.model_copy(update={"weight": w})}  # type: ignore[union-attr]
            )
            report[f"search_hybrid_graph_weight_{w}"] = recall(client, cubes, data, cfg)

        if args.llm_fake_turns:
            from memsvc.llm import LiteLLM
            from memsvc.llm.fake import registered

            sample = data[0]
            sid = sample["sample_id"]
            cube = client.create_cube(f"enrich-llm-{sid}-{uuid.uuid4().hex[:6]}")
            turns = list(turns_of(sample["conversation"]))[: args.llm_fake_turns]
            client.add_many(cube.id, [memory_of(sid, n, when, t) for n, when, t in turns])
            with registered(fake_script) as reg:
                llm = LiteLLM(LLMSettings(model=reg.model))
                n, secs = asyncio.run(enrich_all(inst.database_url, settings, llm=llm))
                calls = len(reg.handler.calls)
            stats = asyncio.run(graph_stats(inst.database_url, [str(cube.id)]))
            report["llm_fake"] = {
                "inserts": n,
                "llm_calls": calls,
                "llm_calls_per_insert": round(calls / n, 3) if n else 0.0,
                "memories_per_s_with_instant_llm": round(n / secs, 1) if secs else 0.0,
                **stats,
            }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
