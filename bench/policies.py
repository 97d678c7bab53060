"""Write policies benchmark (issue 11): the dev conversations through ``POST .../ingest``
under each policy, then ``search`` recall@10 through provenance.

    python bench/policies.py --locomo locomo_dev.json --lme lme_dev.json --out OUT.json
                             [--lme-limit N] [--write session|turn] [--preset P]
                             [--url URL --api-key KEY]

Messages: LoCoMo turns as ``{"role": "user", "name": speaker, "content": text}`` (a shared
photo's caption appended), LongMemEval turns as ``{"role": role, "content": content}``;
each with its session's date as ``timestamp``, its session as ``session_id`` and its turn
id as ``external_id``. ``session`` (default) sends one request per session, ``turn`` one per
message (an agent writing live).

Policies: ``store_all`` (the baseline), ``learned`` as packaged (trained on both dev sets:
in-sample here, reported for reference), and ``learned`` trained on the *other* dev set
through the API (``POST /v1/policies/learned/train`` with that set's questions as labels,
then activated, in a tenant of its own): train on LoCoMo, report on LongMemEval, and the
reverse. That cross-trained figure is the honest one.

Per policy and dataset: messages, memories kept (live, excluding the core block), the
ratio to ``store_all``, decisions by operation, LLM calls, ingest rate (messages/s over
the ingest requests) and its ratio to ``store_all``'s, and recall@10 as the data README
defines it (``hybrid`` search, or ``--preset``; the results' sources' turn ids in rank
order, flattened, deduplicated, cut at 10 turns; LoCoMo categories 1-4, LongMemEval
``has_answer`` turns) with its ratio to ``store_all``'s. A merged memory carries several
turns, so the cut at 10 turns is what keeps the comparison fair; ``recall@10_results``
(every turn of the first 10 results, not cut) and ``turns_per_10_results`` are reported
beside it to show how much more text 10 merged results hold. Without ``--url`` it starts
its own instance.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import local_instance
from lme import lme_date
from locomo import normalise_evidence, turns_in_rank_order, turns_of

from memsvc.schemas import SearchRequest
from memsvc.sdk import MemoryClient

MAX_CONTENT_BYTES = 32_768


def locomo_sessions(conv: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(session id, messages) in order."""
    sample = conv["sample_id"]
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for n, when, turn in turns_of(conv["conversation"]):
        text = turn["text"]
        if turn.get("blip_caption"):
            text += f" [shares a photo: {turn['blip_caption']}]"
        sid = f"{sample}/session_{n}"
        out[sid].append(
            {
                "role": "user",
                "name": turn["speaker"],
                "content": text,
                "timestamp": when.isoformat(),
                "session_id": sid,
                "external_id": turn["dia_id"],
            }
        )
    return list(out.items())


def locomo_questions(conv: dict[str, Any]) -> list[tuple[str, set[str]]]:
    out = []
    for qa in conv["qa"]:
        if qa.get("category") not in (1, 2, 3, 4):
            continue
        ev = {e for e in (normalise_evidence(x) for x in qa.get("evidence", [])) if e}
        if ev:
            out.append((qa["question"], ev))
    return out


def lme_sessions(q: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for sid, date, turns in zip(
        q["haystack_session_ids"], q["haystack_dates"], q["haystack_sessions"], strict=True
    ):
        when = lme_date(date).isoformat()
        msgs = []
        for i, t in enumerate(turns):
            text = t["content"].replace("\x00", "")
            if not text.strip():
                continue
            if len(text.encode()) > MAX_CONTENT_BYTES:
                text = text.encode()[:MAX_CONTENT_BYTES].decode(errors="ignore")
            msgs.append(
                {
                    "role": t["role"] if t["role"] in ("user", "assistant") else "user",
                    "content": text,
                    "timestamp": when,
                    "session_id": sid,
                    "external_id": f"{sid}#{i}",
                }
            )
        if msgs:
            out.append((sid, msgs))
    return out


def lme_answer_turns(q: dict[str, Any]) -> set[str]:
    return {
        f"{sid}#{i}"
        for sid, turns in zip(q["haystack_session_ids"], q["haystack_sessions"], strict=True)
        for i, t in enumerate(turns)
        if t.get("has_answer")
    }


class Corpus:
    """One dev set as units (a conversation or a question's haystack), each with its
    sessions and questions (text, relevant turn ids, ``now``)."""

    def __init__(self, name: str, units: list[dict[str, Any]]) -> None:
        self.name = name
        self.units = units

    @classmethod
    def locomo(cls, path: Path) -> Corpus:
        data = json.loads(path.read_text())
        return cls(
            "locomo",
            [
                {
                    "id": c["sample_id"],
                    "sessions": locomo_sessions(c),
                    "questions": [(q, ev, None) for q, ev in locomo_questions(c)],
                }
                for c in data
            ],
        )

    @classmethod
    def lme(cls, path: Path, limit: int | None) -> Corpus:
        data = json.loads(path.read_text())[:limit]
        return cls(
            "lme",
            [
                {
                    "id": q["question_id"],
                    "sessions": lme_sessions(q),
                    "questions": [
                        (q["question"], lme_answer_turns(q), lme_date(q["question_date"]))
                    ],
                }
                for q in data
                if lme_answer_turns(q)
            ],
        )

    def eval_set(self) -> list[dict[str, Any]]:
        return [
            {"question": q[:8000], "evidence": sorted(ev)}
            for u in self.units
            for q, ev, _ in u["questions"]
        ]


def batches(
    sessions: list[tuple[str, list[dict[str, Any]]]], how: str
) -> Iterator[list[dict[str, Any]]]:
    for _, msgs in sessions:
        if how == "turn":
            for m in msgs:
                yield [m]
        else:
            for i in range(0, len(msgs), 500):
                yield msgs[i : i + 500]


def run_policy(
    http: httpx.Client,
    client: MemoryClient,
    corpus: Corpus,
    policy: str,
    how: str,
    preset: str = "hybrid",
) -> dict[str, Any]:
    ops: Counter[str] = Counter()
    messages = kept = llm_calls = 0
    ingest_s = 0.0
    recalls: list[float] = []
    by_results: list[float] = []
    turns_per_10: list[int] = []
    for unit in corpus.units:
        cube = client.create_cube(f"{corpus.name}-{policy}-{unit['id']}-{uuid.uuid4().hex[:6]}")
        for batch in batches(unit["sessions"], how):
            t0 = time.perf_counter()
            resp = http.post(
                f"/v1/cubes/{cube.id}/ingest", json={"messages": batch, "policy": policy}
            )
            ingest_s += time.perf_counter() - t0
            resp.raise_for_status()
            body = resp.json()
            messages += len(batch)
            ops.update(d["operation"] for d in body["decisions"])
            llm_calls += int(body.get("llm_calls", 0))
        kept += sum(
            1 for m in client.iter_memories(cube.id) if m.layer != "core" and m.kind != "summary"
        )
        for question, relevant, now in unit["questions"]:
            res = client.search(
                cube.id, SearchRequest(query=question[:8000], top_k=10, preset=preset, now=now)
            )
            turns = turns_in_rank_order(res.results)
            turns_per_10.append(len(turns))
            recalls.append(len(relevant & set(turns[:10])) / len(relevant))
            by_results.append(len(relevant & set(turns)) / len(relevant))
        client.delete_cube(cube.id)
    return {
        "messages": messages,
        "memories": kept,
        "operations": dict(sorted(ops.items())),
        "llm_calls": llm_calls,
        "ingest_msgs_per_s": round(messages / ingest_s, 1) if ingest_s else 0.0,
        "recall@10": round(statistics.fmean(recalls), 4) if recalls else 0.0,
        "recall@10_results": round(statistics.fmean(by_results), 4) if by_results else 0.0,
        "turns_per_10_results": round(statistics.fmean(turns_per_10), 2) if turns_per_10 else 0,
        "questions": len(recalls),
    }


def train_on(http: httpx.Client, client: MemoryClient, corpus: Corpus, how: str) -> dict[str, Any]:
    """Ingest ``corpus`` with the packaged learned policy (its decisions and features are
    recorded), then train a version on its questions and activate it."""
    cubes = []
    for unit in corpus.units:
        cube = client.create_cube(f"train-{corpus.name}-{unit['id']}-{uuid.uuid4().hex[:6]}")
        cubes.append(str(cube.id))
        for batch in batches(unit["sessions"], how):
            http.post(
                f"/v1/cubes/{cube.id}/ingest", json={"messages": batch, "policy": "learned"}
            ).raise_for_status()
    resp = http.post(
        "/v1/policies/learned/train",
        json={"cube_ids": cubes, "eval_set": corpus.eval_set(), "activate": True},
        timeout=600,
    )
    resp.raise_for_status()
    for cid in cubes:
        client.delete_cube(cid)
    return dict(resp.json())


def compare(results: dict[str, dict[str, Any]]) -> None:
    base = results["store_all"]
    for r in results.values():
        r["memories_vs_store_all"] = round(r["memories"] / base["memories"], 3)
        r["recall_vs_store_all"] = (
            round(r["recall@10"] / base["recall@10"], 3) if base["recall@10"] else None
        )
        r["rate_vs_store_all"] = round(r["ingest_msgs_per_s"] / base["ingest_msgs_per_s"], 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--locomo", type=Path, required=True)
    ap.add_argument("--lme", type=Path, required=True)
    ap.add_argument("--lme-limit", type=int, default=10)
    ap.add_argument("--locomo-limit", type=int, default=None)
    ap.add_argument("--write", choices=["session", "turn"], default="session")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="hybrid", help="the search preset recall is read with")
    ap.add_argument("--url")
    ap.add_argument("--api-key")
    ap.add_argument("--skip-cross", action="store_true", help="no cross-trained runs")
    ap.add_argument(
        "--sets",
        default="locomo,lme",
        help="the data sets to run (comma-separated; cross-trained runs need both)",
    )
    args = ap.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    corpora = {
        "locomo": Corpus.locomo(args.locomo),
        "lme": Corpus.lme(args.lme, args.lme_limit),
    }
    if args.locomo_limit:
        corpora["locomo"].units = corpora["locomo"].units[: args.locomo_limit]
    sets = {name.strip() for name in args.sets.split(",")}
    if not sets or sets - set(corpora):
        ap.error(f"--sets: choose from {sorted(corpora)}")
    corpora = {name: c for name, c in corpora.items() if name in sets}
    if len(corpora) < 2:
        args.skip_cross = True
    with local_instance() if not args.url else _remote(args) as inst:
        url, key = inst.url, inst.api_key
        out: dict[str, Any] = {
            "write": args.write,
            "preset": args.preset,
            "lme_questions": len(corpora["lme"].units) if "lme" in corpora else 0,
        }
        with (
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600
            ) as http,
            MemoryClient(url, api_key=key, timeout=600) as client,
        ):
            for name, corpus in corpora.items():
                res: dict[str, dict[str, Any]] = {}
                for policy in ("store_all", "learned"):
                    res[policy] = run_policy(http, client, corpus, policy, args.write, args.preset)
                    print(name, policy, json.dumps(res[policy]), flush=True)
                out[name] = res
            if not args.skip_cross:
                for train_name, test_name in (("locomo", "lme"), ("lme", "locomo")):
                    # A tenant of its own: its trained version does not touch the others.
                    tenant = client_admin(http, f"cross-{train_name}-{uuid.uuid4().hex[:6]}")
                    with (
                        httpx.Client(
                            base_url=url, headers={"Authorization": f"Bearer {tenant}"}, timeout=600
                        ) as th,
                        MemoryClient(url, api_key=tenant, timeout=600) as tc,
                    ):
                        trained = train_on(th, tc, corpora[train_name], args.write)
                        r = run_policy(
                            th, tc, corpora[test_name], "learned", args.write, args.preset
                        )
                    r["trained"] = trained
                    out[test_name][f"learned_trained_on_{train_name}"] = r
                    print(test_name, f"learned_trained_on_{train_name}", json.dumps(r), flush=True)
        for name in corpora:
            compare(out[name])
    args.out.write_text(json.dumps(out, indent=2))
    for name in corpora:
        print(f"\n{name}")
        for policy, r in out[name].items():
            print(
                f"  {policy:28s} memories {r['memories']:6d} ({r['memories_vs_store_all']:.3f})"
                f"  recall@10 {r['recall@10']:.4f} ({r['recall_vs_store_all']})"
                f" [10 results: {r['recall@10_results']:.4f}]"
                f"  {r['ingest_msgs_per_s']:7.1f} msg/s ({r['rate_vs_store_all']:.3f})"
                f"  turns/10 {r['turns_per_10_results']}  ops {r['operations']}"
            )


def client_admin(http: httpx.Client, name: str) -> str:
    """A new tenant and a key for it (the operator key of ``http``)."""
    t = http.post("/v1/tenants", json={"name": name})
    t.raise_for_status()
    k = http.post("/v1/keys", json={"tenant_id": t.json()["id"], "name": "bench", "role": "admin"})
    k.raise_for_status()
    return str(k.json()["key"])


class _remote:
    def __init__(self, args: argparse.Namespace) -> None:
        self.url, self.api_key = args.url, args.api_key

    def __enter__(self) -> _remote:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
