"""LongMemEval_S retrieval benchmark, per shared/data/README.md, with a per-channel breakdown.

    python bench/lme.py --data lme_dev.json --out OUT.json [--write turn|session|batch]
                        [--limit N] [--url URL --api-key KEY] [--mode search|ask]
                        [--dump FILE [--dump-passages]]

Each question gets its own cube; every turn of its haystack is a memory ("role: content",
like the plain baselines) with one source (``external_id`` = ``<session_id>#<turn index>``,
speaker = role, ``occurred_at`` = session date). How the turns are written:
``turn`` (default): one request per turn with ``session_id`` (an agent writing live);
``session``: one request per session with ``session_id``; ``batch``: 100 turns a request,
no ``session_id``.

Every question is searched several ways through the API, so one run says which channel
finds what: the ``hybrid`` preset, the vector channel alone, BM25 alone, and an equal RRF
of the two (k = 60) — the service's own versions of the README's plain baselines.
The question's date is the search's ``now``. Metrics: turn recall@10 (``has_answer``
turns among the first 10 result turns, flattened, deduplicated), session recall_any@5 /
recall_all@5 (answer sessions among the sessions of the top 5 results), per question type
and overall. ``--mode ask`` adds ``ask`` (heuristic) as one more variant, scored the same way
on its evidence, with its cycles and latency. ``--dump`` writes each question's candidates
with their per-channel ranks (``bench/locomo.py``'s format; ``bench/fusion.py`` scores fusion
variants from it offline). No LLM is used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from locomo import (
    DUMP_CONFIG,
    DUMP_PASSAGES_CONFIG,
    _client,
    dump_candidates,
    turns_in_rank_order,
)

from memsvc.schemas import (
    ChannelConfig,
    MemoryCreate,
    RetrievalConfig,
    SearchRequest,
    SourceCreate,
)
from memsvc.sdk import MemoryClient

# A memory's content is capped at 32 KiB by default (MEMSVC_LIMITS__MAX_CONTENT_BYTES); a
# few LongMemEval turns are longer: their content is cut there, their source keeps all.
MAX_CONTENT_BYTES = 32_768

VARIANTS: dict[str, dict[str, Any]] = {
    "hybrid": {"preset": "hybrid"},
    "vector": {
        "config": RetrievalConfig(vector=ChannelConfig(weight=1.0, depth=100), fulltext=None)
    },
    "bm25": {"config": RetrievalConfig(vector=None, fulltext=ChannelConfig(weight=1.0, depth=100))},
    "rrf60": {
        "config": RetrievalConfig(
            vector=ChannelConfig(weight=1.0, depth=100),
            fulltext=ChannelConfig(weight=1.0, depth=100),
            rrf_k=60,
        )
    },
}


def lme_date(text: str) -> datetime:
    """``2023/05/30 (Tue) 23:40`` -> an aware datetime."""
    return datetime.strptime(text.split(" (")[0] + text.split(")")[-1], "%Y/%m/%d %H:%M").replace(
        tzinfo=UTC
    )


def memories_of(q: dict[str, Any], cube_tag: str) -> Iterator[tuple[str, MemoryCreate]]:
    """(session id, memory) for every turn of the question's haystack, in order."""
    for sid, date, turns in zip(
        q["haystack_session_ids"], q["haystack_dates"], q["haystack_sessions"], strict=True
    ):
        when = lme_date(date)
        for i, turn in enumerate(turns):
            text = turn["content"].replace("\x00", "")
            if not text.strip():
                continue
            content = f"{turn['role']}: {text}"
            if len(content.encode()) > MAX_CONTENT_BYTES:  # the service's default limit
                content = content.encode()[:MAX_CONTENT_BYTES].decode(errors="ignore")
            yield (
                sid,
                MemoryCreate(
                    content=content,
                    kind="message",
                    layer="episodic",
                    session_id=f"{cube_tag}/{sid}",
                    sources=[
                        SourceCreate(
                            kind="message",
                            external_id=f"{sid}#{i}",
                            speaker=turn["role"],
                            occurred_at=when,
                            text=text,
                        )
                    ],
                ),
            )


def write(client: MemoryClient, cube: str, items: list[tuple[str, MemoryCreate]], how: str) -> None:
    if how == "turn":
        for _, m in items:
            client.add_many(cube, [m])
    elif how == "session":
        by_session: dict[str, list[MemoryCreate]] = defaultdict(list)
        for sid, m in items:
            by_session[sid].append(m)
        for ms in by_session.values():
            client.add_many(cube, ms)
    else:
        plain = [m.model_copy(update={"session_id": None}) for _, m in items]
        for i in range(0, len(plain), 100):
            client.add_many(cube, plain[i : i + 100])


def run(
    client: MemoryClient,
    data: list[dict[str, Any]],
    how: str,
    dump: TextIO | None = None,
    mode: str = "search",
    dump_config: RetrievalConfig = DUMP_CONFIG,
) -> dict[str, Any]:
    names = [*VARIANTS, *(["ask"] if mode == "ask" else [])]
    scores: dict[str, dict[str, dict[str, list[float]]]] = {
        v: defaultdict(lambda: defaultdict(list)) for v in names
    }
    cycles: list[int] = []
    per_question: list[dict[str, Any]] = []
    latencies: dict[str, list[float]] = defaultdict(list)
    turns_total, ingest_s = 0, 0.0
    for q in data:
        tag = uuid.uuid4().hex[:6]
        cube = client.create_cube(f"lme-{q['question_id']}-{tag}")
        items = list(memories_of(q, tag))
        answer_turns = {
            f"{sid}#{i}"
            for sid, turns in zip(q["haystack_session_ids"], q["haystack_sessions"], strict=True)
            for i, t in enumerate(turns)
            if t.get("has_answer")
        }
        answer_sessions = set(q["answer_session_ids"])
        started = time.perf_counter()
        write(client, cube.id, items, how)
        ingest_s += time.perf_counter() - started
        turns_total += len(items)
        row: dict[str, Any] = {"id": q["question_id"], "type": q["question_type"]}
        for name in names:
            t0 = time.perf_counter()
            if name == "ask":
                asked = client.ask(
                    cube.id,
                    q["question"],
                    top_k=10,
                    mode="heuristic",
                    now=lme_date(q["question_date"]),
                )
                latencies[name].append((time.perf_counter() - t0) * 1000)
                cycles.append(asked.cycles)
                turns = turns_in_rank_order(asked.evidence)[:10]
                sessions5 = {t.split("#")[0] for t in turns_in_rank_order(asked.evidence[:5])}
            else:
                resp = client.search(
                    cube.id,
                    SearchRequest(
                        query=q["question"],
                        top_k=10,
                        now=lme_date(q["question_date"]),
                        **VARIANTS[name],
                    ),
                )
                latencies[name].append((time.perf_counter() - t0) * 1000)
                turns = turns_in_rank_order(resp.results)[:10]
                sessions5 = {t.split("#")[0] for t in turns_in_rank_order(resp.results[:5])}
            got = {
                "turn_recall@10": (
                    len(answer_turns & set(turns)) / len(answer_turns) if answer_turns else None
                ),
                "recall_any@5": float(bool(answer_sessions & sessions5)),
                "recall_all@5": float(answer_sessions <= sessions5),
            }
            for metric, value in got.items():
                if value is not None:
                    scores[name][q["question_type"]][metric].append(value)
                    scores[name]["all"][metric].append(value)
            row[name] = got
        per_question.append(row)
        if dump is not None:
            dump_candidates(
                client,
                cube.id,
                dump,
                group=f"lme/{q['question_id']}",
                query=q["question"],
                relevant=answer_turns,
                now=lme_date(q["question_date"]),
                config=dump_config,
            )
        client.delete_cube(cube.id)

    def mean(xs: list[float]) -> float:
        return round(statistics.fmean(xs), 4) if xs else 0.0

    return {
        "write": how,
        "questions": len(data),
        "turns": turns_total,
        "ingest_turns_per_s": round(turns_total / ingest_s, 1) if ingest_s else 0.0,
        "search_ms_p50": {v: round(statistics.median(x), 1) for v, x in latencies.items()},
        "variants": {
            v: {t: {m: mean(xs) for m, xs in ms.items()} for t, ms in sorted(by_type.items())}
            for v, by_type in scores.items()
        },
        **(
            {"ask_cycles_mean": round(statistics.fmean(cycles), 3) if cycles else 0.0}
            if mode == "ask"
            else {}
        ),
        "per_question": per_question,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--write", choices=("turn", "session", "batch"), default="turn")
    ap.add_argument("--dump", type=Path, help="write each question's candidates (JSONL) here")
    ap.add_argument("--dump-passages", action="store_true", help="dump passages as a channel")
    ap.add_argument("--limit", type=int, default=None, help="the first N questions only")
    ap.add_argument("--url")
    ap.add_argument("--api-key")
    ap.add_argument("--backend", default=None, help="embedder backend for the local instance")
    ap.add_argument("--mode", choices=("search", "ask"), default="search")
    args = ap.parse_args()
    data = json.loads(args.data.read_text())[: args.limit]
    with (
        _client(args, timeout=600) as client,
        open(args.dump, "w") if args.dump else nullcontext() as dump,
    ):
        dump_config = DUMP_PASSAGES_CONFIG if args.dump_passages else DUMP_CONFIG
        report = run(client, data, args.write, dump, args.mode, dump_config)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: v for k, v in report.items() if k != "per_question"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
