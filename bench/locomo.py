"""LoCoMo retrieval benchmark: every turn a memory, every question a search, scored per
shared/data/README.md (results -> their sources' turn ids in rank order, flattened,
deduplicated, cut at k).

    python bench/locomo.py --data FILE --out OUT.json [--preset NAME] [--url URL --api-key KEY]
                           [--write session|turn|batch] [--mode search|ask]
                           [--dump FILE [--dump-passages]]

How the turns are written: ``session`` (default): one request per session with
``session_id``; ``turn``: one request per turn with ``session_id`` (an agent writing as the
conversation goes); ``batch``: ``--batch`` turns a request (default 100 here), no
``session_id``.

``--mode ask`` also runs ``ask`` (heuristic: no LLM) for every question and reports the
recall of its evidence (same metric, same k) next to search's, per category, with its
cycles, LLM calls and latency. ``--llm-script`` runs ask in LLM mode against a scripted
provider (litellm custom provider, in-process: local instance only) that answers once the
gold answer appears in the evidence it is shown and otherwise asks for probes (the
question's longest words): it measures the loop's LLM calls and cycles, not answer quality.

``--dump`` writes each question's candidates with their per-channel ranks (the training data
of ``memsvc ranker train``; ``bench/fusion.py`` scores fusion variants from it offline);
``--dump-passages`` records passage vectors as their own channel.

Without ``--url`` it starts its own embedded instance in a temp dir. No LLM is used.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Instance, local_instance

from memsvc.schemas import (
    AskResponse,
    ChannelConfig,
    MemoryCreate,
    RetrievalConfig,
    SearchRequest,
    SourceCreate,
)
from memsvc.sdk import MemoryClient

_EVIDENCE = re.compile(r"^D:?(\d+):0*(\d+)$")
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


def normalise_evidence(ref: str) -> str | None:
    """``D:11:26`` -> ``D11:26``, ``D30:05`` -> ``D30:5``; None when unfixable."""
    m = _EVIDENCE.match(ref.strip())
    return f"D{int(m.group(1))}:{int(m.group(2))}" if m else None


def session_date(text: str) -> datetime:
    """``1:56 pm on 8 May, 2023`` -> an aware datetime."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def turns_of(conv: dict[str, Any]) -> Iterator[tuple[int, datetime, dict[str, Any]]]:
    """(session number, session date, turn) in conversation order."""
    numbers = sorted(int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k))
    for n in numbers:
        when = session_date(conv[f"session_{n}_date_time"])
        for turn in conv[f"session_{n}"]:
            yield n, when, turn


def memory_of(sample: str, n: int, when: datetime, turn: dict[str, Any]) -> MemoryCreate:
    content = turn["text"]
    if turn.get("blip_caption"):
        content += f" [shares a photo: {turn['blip_caption']}]"
    return MemoryCreate(
        content=content,
        kind="message",
        layer="episodic",
        session_id=f"{sample}/session_{n}",
        sources=[
            SourceCreate(
                kind="message",
                external_id=turn["dia_id"],
                speaker=turn["speaker"],
                occurred_at=when,
                text=turn["text"],
            )
        ],
    )


def ndcg(ranked: list[str], relevant: set[str], k: int) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, t in enumerate(ranked[:k]) if t in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def turns_in_rank_order(results: list[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for r in results:
        for s in r.memory.sources:
            if s.external_id:
                seen.setdefault(s.external_id, None)
    return list(seen)


# The wide search whose candidates train the learned ranker (``memsvc ranker train``): every
# channel of ``hybrid``, deeper, with each candidate's per-channel ranks and scores.
DUMP_CONFIG = RetrievalConfig(
    vector=ChannelConfig(weight=1.0, depth=100),
    fulltext=ChannelConfig(weight=2.0, depth=100),
    time=ChannelConfig(weight=1.0, depth=50),
    graph=ChannelConfig(weight=0.25, depth=50),
    rrf_k=20,
)
# ``--dump-passages``: the same, with long memories' passage vectors as their own channel
# (``passage``; ``vector`` is then each memory's own embedding alone). For analysis
# (bench/fusion.py), not for ``memsvc ranker train``: its features read the merged channel.
DUMP_PASSAGES_CONFIG = DUMP_CONFIG.model_copy(
    update={"passages": ChannelConfig(weight=1.0, depth=100)}
)


def dump_candidates(
    client: MemoryClient,
    cube: str,
    out: TextIO,
    *,
    group: str,
    query: str,
    relevant: set[str],
    now: datetime | None = None,
    config: RetrievalConfig = DUMP_CONFIG,
) -> None:
    """One JSON line: a question, its candidates as search returns them (explain on) and
    which turns answer it; the labelled data format of ``memsvc ranker train``."""
    resp = client.search(
        cube, SearchRequest(query=query, top_k=200, config=config, explain=True, now=now)
    )
    line = {
        "group": group,
        "query": query,
        "now": now.isoformat() if now else None,
        "results": [r.model_dump(mode="json") for r in resp.results],
        # Relevant turns in all: some may be among no candidate (recall's denominator).
        "relevant_total": len(relevant),
        "relevant": sorted(
            str(r.memory.id)
            for r in resp.results
            if any(src.external_id in relevant for src in r.memory.sources)
        ),
    }
    out.write(json.dumps(line) + "\n")
    out.flush()


def write(
    client: MemoryClient, cube: str, by_session: dict[int, list[MemoryCreate]], how: str, batch: int
) -> None:
    if how == "session":
        # One batch per session so each turn can be indexed with what was said before it.
        for items in by_session.values():
            for i in range(0, len(items), batch):
                client.add_many(cube, items[i : i + batch])
    elif how == "turn":
        for items in by_session.values():
            for m in items:
                client.add_many(cube, [m])
    else:
        plain = [
            m.model_copy(update={"session_id": None}) for ms in by_session.values() for m in ms
        ]
        for i in range(0, len(plain), batch):
            client.add_many(cube, plain[i : i + batch])


def ask_turns(
    client: MemoryClient, cube: str, question: str, mode: str = "heuristic"
) -> tuple[list[str], AskResponse]:
    """The turns of an ask's evidence in order, and the response."""
    resp = client.ask(cube, question, top_k=10, mode=mode)
    return turns_in_rank_order(resp.evidence), resp


class AskStats:
    """Recall of ask's evidence per category, its cycles and latency."""

    def __init__(self) -> None:
        self.recall10: dict[int, list[float]] = defaultdict(list)
        self.cycles: list[int] = []
        self.llm_calls: list[int] = []
        self.ms: list[float] = []
        self.answered: list[float] = []

    def add(
        self, cat: int, relevant: set[str], turns: list[str], resp: AskResponse, ms: float
    ) -> None:
        self.recall10[cat].append(len(relevant & set(turns[:10])) / len(relevant))
        self.cycles.append(resp.cycles)
        self.llm_calls.append(resp.llm_calls)
        self.ms.append(ms)
        self.answered.append(1.0 if resp.answer is not None else 0.0)

    def report(self, core: tuple[int, ...]) -> dict[str, Any]:
        def mean(xs: list[float] | list[int]) -> float:
            return round(statistics.fmean(xs), 4) if xs else 0.0

        ms = sorted(self.ms)
        return {
            "recall@10": mean([x for c in core for x in self.recall10[c]]),
            "per_category": {CATEGORIES[c]: mean(self.recall10[c]) for c in sorted(self.recall10)},
            "cycles_mean": mean(self.cycles),
            "share_ended_at_gate": mean([1.0 if c == 0 else 0.0 for c in self.cycles]),
            "llm_calls_median": statistics.median(self.llm_calls) if self.llm_calls else 0,
            "llm_calls_mean": mean(self.llm_calls),
            "answered_share": mean(self.answered),
            "ms_p50": round(ms[len(ms) // 2], 2) if ms else 0.0,
            "ms_p95": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2) if ms else 0.0,
        }


def run(
    client: MemoryClient,
    data: list[dict[str, Any]],
    preset: str,
    batch: int,
    how: str = "session",
    dump: TextIO | None = None,
    mode: str = "search",
    ask_mode: str = "heuristic",
    dump_config: RetrievalConfig = DUMP_CONFIG,
) -> dict[str, Any]:
    asks = AskStats()
    recall5: dict[int, list[float]] = defaultdict(list)
    recall10: dict[int, list[float]] = defaultdict(list)
    ndcg10: dict[int, list[float]] = defaultdict(list)
    latencies: list[float] = []
    skipped = 0
    turns_total = 0
    ingest_s = 0.0
    for sample in data:
        sid = sample["sample_id"]
        cube = client.create_cube(f"locomo-{sid}-{uuid.uuid4().hex[:6]}")
        by_session: dict[int, list[MemoryCreate]] = defaultdict(list)
        ids: set[str] = set()
        for n, when, turn in turns_of(sample["conversation"]):
            by_session[n].append(memory_of(sid, n, when, turn))
            ids.add(turn["dia_id"])
        started = time.perf_counter()
        write(client, cube.id, by_session, how, batch)
        ingest_s += time.perf_counter() - started
        turns_total += len(ids)
        for qa in sample["qa"]:
            evidence = {normalise_evidence(e) for e in qa.get("evidence", [])}
            relevant = {e for e in evidence if e is not None and e in ids}
            if not relevant:
                skipped += 1
                continue
            t0 = time.perf_counter()
            resp = client.search(
                cube.id, SearchRequest(query=qa["question"], top_k=10, preset=preset)
            )
            latencies.append((time.perf_counter() - t0) * 1000)
            ranked = turns_in_rank_order(resp.results)[:10]
            cat = int(qa["category"])
            recall5[cat].append(len(relevant & set(ranked[:5])) / len(relevant))
            recall10[cat].append(len(relevant & set(ranked)) / len(relevant))
            ndcg10[cat].append(ndcg(ranked, relevant, 10))
            if mode == "ask":
                t0 = time.perf_counter()
                turns, answer = ask_turns(client, cube.id, qa["question"], ask_mode)
                asks.add(cat, relevant, turns, answer, (time.perf_counter() - t0) * 1000)
            if dump is not None and cat in (1, 2, 3, 4):
                dump_candidates(
                    client,
                    cube.id,
                    dump,
                    group=f"locomo/{sid}",
                    query=qa["question"],
                    relevant=relevant,
                    config=dump_config,
                )

    def mean(xs: list[float]) -> float:
        return round(statistics.fmean(xs), 4) if xs else 0.0

    core = (1, 2, 3, 4)
    lat = sorted(latencies)
    return {
        "preset": preset,
        "write": how,
        "recall@5": mean([x for c in core for x in recall5[c]]),
        "recall@10": mean([x for c in core for x in recall10[c]]),
        "ndcg@10": mean([x for c in core for x in ndcg10[c]]),
        "per_category": {
            str(c): {
                "name": CATEGORIES[c],
                "questions": len(recall10[c]),
                "recall@5": mean(recall5[c]),
                "recall@10": mean(recall10[c]),
                "ndcg@10": mean(ndcg10[c]),
            }
            for c in sorted(recall10)
        },
        "questions_skipped": skipped,
        "ingest_turns_per_s": round(turns_total / ingest_s, 1) if ingest_s else 0.0,
        "search_ms_p50": round(lat[len(lat) // 2], 2) if lat else 0.0,
        "search_ms_p95": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 2) if lat else 0.0,
        "memories": turns_total,
        "llm_calls": 0,
        **({"ask": asks.report(core)} if mode == "ask" else {}),
    }


class GoldScript:
    """A scripted LLM for ``ask``: answers when a question's gold answer is in the evidence
    shown, else asks for a probe made of the question's three longest words."""

    def __init__(self, data: list[dict[str, Any]]) -> None:
        self.gold = {
            qa["question"].strip(): str(qa["answer"]).lower()
            for s in data
            for qa in s["qa"]
            if "answer" in qa
        }

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        prompt = str(messages[-1]["content"])
        m = re.search(r"^Question: (.*)$", prompt, re.M)
        question = m.group(1).strip() if m else ""
        gold = self.gold.get(question, "\x00")
        blocks = re.findall(r'^\[(\d+)\][^\n]*\n"""\n(.*?)\n"""', prompt, re.M | re.S)
        used = [int(n) for n, text in blocks if gold in text.lower()]
        if used:
            return json.dumps({"answer": gold, "used": used[:3], "cues": []})
        words = sorted(set(re.findall(r"[A-Za-z]{4,}", question)), key=len, reverse=True)
        return json.dumps({"answer": None, "probes": [" ".join(words[:3])], "cues": []})


_INSTANCE: list[Instance] = []


@contextmanager
def _client(args: argparse.Namespace, timeout: float = 300) -> Iterator[MemoryClient]:
    """A client of ``--url`` with ``--api-key``, else of a throwaway local instance."""
    ctx = nullcontext(None) if args.url else local_instance(backend=args.backend)
    with ctx as inst:
        if inst is not None:
            _INSTANCE[:] = [inst]
        url = args.url or inst.url  # type: ignore[union-attr]
        key = args.api_key or inst.api_key  # type: ignore[union-attr]
        with MemoryClient(url, key, timeout=timeout) as client:
            yield client


@contextmanager
def _scripted(args: argparse.Namespace, data: list[dict[str, Any]]) -> Iterator[None]:
    """With ``--llm-script``: the local instance's ask gets the scripted LLM."""
    if not args.llm_script:
        yield
        return
    from memsvc.config import LLMSettings
    from memsvc.llm import LiteLLM
    from memsvc.llm.fake import registered

    with registered(GoldScript(data)) as reg:
        _INSTANCE[0].state.llm = LiteLLM(LLMSettings(model=reg.model))
        yield


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--preset", default="hybrid")
    ap.add_argument("--url")
    ap.add_argument("--api-key")
    ap.add_argument("--batch", type=int, default=None, help="turns a request (200; batch: 100)")
    ap.add_argument("--write", choices=("session", "turn", "batch"), default="session")
    ap.add_argument("--dump", type=Path, help="write each question's candidates (JSONL) here")
    ap.add_argument("--dump-passages", action="store_true", help="dump passages as a channel")
    ap.add_argument("--backend", default=None, help="embedder backend for the local instance")
    ap.add_argument("--mode", choices=("search", "ask"), default="search")
    ap.add_argument("--llm-script", action="store_true", help="ask in LLM mode, scripted")
    args = ap.parse_args()
    data = json.loads(args.data.read_text())
    if args.llm_script and args.url:
        ap.error("--llm-script needs the local instance (no --url)")
    with _client(args) as client, _scripted(args, data):
        batch = args.batch or (100 if args.write == "batch" else 200)
        with open(args.dump, "w") if args.dump else nullcontext() as dump:
            report = run(
                client,
                data,
                args.preset,
                batch,
                args.write,
                dump,
                "ask" if args.llm_script else args.mode,
                "llm" if args.llm_script else "heuristic",
                DUMP_PASSAGES_CONFIG if args.dump_passages else DUMP_CONFIG,
            )
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
