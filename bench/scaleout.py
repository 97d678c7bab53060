"""Scale-out under load on one machine: N API processes and M workers on one Postgres.

    python bench/scaleout.py [--api 2] [--workers 2] [--users 8] [--rate 1.0]
                             [--duration 120] [--cubes 4] [--out OUT.json]

1. An embedded Postgres in a temp dir, migrated once; a tenant key from `memsvc keys create`.
2. `--api` `memsvc serve` processes with their in-process worker off
   (MEMSVC_JOBS__IN_PROCESS_WORKER=false) and `--workers` `memsvc worker` processes, all on
   that one database (the docker-compose.yml shape, without Docker).
3. locust (bench/locustfile.py) on loopback: `--users` agents, each at `--rate` tasks/s
   (3 writes : 1 search), spread over the API processes, for `--duration` seconds.
4. Then the queue drains and the checks run against the database itself:
   every acknowledged write present exactly once (its marker in exactly one memory, the ids
   returned are those memories), no memory that nobody acknowledged, every enrich job done
   in one attempt, no memory enriched twice (one `enrich` version at most) — i.e. no job ran
   twice across the workers.
Prints throughput, p50/p95/p99 per request kind and the error count (which must be zero).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from memsvc.store.db import (  # noqa: E402
    STATEMENT_TIMEOUT_S,
    migrate,
    sqlalchemy_url,
    start_embedded,
)
from memsvc.store.roles import prepare_app_role  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memsvc_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "memsvc.cli", *args]


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {timeout:.0f} s")


def percentile_row(rows: list[dict[str, str]], name: str) -> dict[str, float]:
    [row] = [r for r in rows if r["Name"] == name] or [{}]
    if not row:
        return {}
    return {
        "requests": float(row["Request Count"]),
        "failures": float(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
    }


def check_exactly_once(db_url: str, acks: list[dict[str, object]]) -> dict[str, object]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id::text, substring(content from '\\[([0-9a-f]{32}-[0-9]+)\\]') FROM memory"
            )
        ).all()
        enrich_twice = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT memory_id FROM memory_version "
                "WHERE change_kind = 'enrich' GROUP BY memory_id HAVING count(*) > 1) t"
            )
        ).scalar_one()
        jobs = dict(
            conn.execute(
                text(
                    "SELECT status || ':' || (attempts > 1)::text, count(*) FROM job "
                    "WHERE kind = 'enrich' GROUP BY 1"
                )
            ).all()
        )
    engine.dispose()
    by_marker: dict[str, list[str]] = {}
    for mid, marker in rows:
        by_marker.setdefault(marker or "", []).append(mid)
    acked_ids = {str(i) for a in acks for i in a["ids"]}  # type: ignore[attr-defined]
    missing = duplicated = wrong_id = 0
    for a in acks:
        for i, mid in enumerate(a["ids"]):  # type: ignore[arg-type]
            found = by_marker.get(f"{a['marker']}-{i}", [])
            missing += not found
            duplicated += len(found) > 1
            wrong_id += bool(found) and found != [mid]
    unacknowledged = sum(1 for mid, _ in rows if mid not in acked_ids)
    return {
        "acknowledged_memories": len(acked_ids),
        "stored_memories": len(rows),
        "missing": missing,
        "duplicated": duplicated,
        "wrong_id": wrong_id,
        "stored_but_unacknowledged": unacknowledged,
        "enriched_twice": int(enrich_twice),
        "enrich_jobs_by_status_and_retried": jobs,
    }


def drain(db_url: str, timeout: float) -> float:
    engine = create_engine(db_url)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            with engine.connect() as conn:
                left = conn.execute(
                    text("SELECT count(*) FROM job WHERE status IN ('queued', 'running')")
                ).scalar_one()
            if left == 0:
                return time.monotonic() - started
            time.sleep(1)
        raise SystemExit(f"queue not drained after {timeout:.0f} s")
    finally:
        engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--api", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--rate", type=float, default=1.0, help="tasks/s per user")
    p.add_argument("--duration", type=int, default=120, help="seconds of load")
    p.add_argument("--cubes", type=int, default=4)
    p.add_argument("--drain-timeout", type=float, default=900)
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="memsvc-scaleout-") as tmp:
        work = Path(tmp)
        server = start_embedded(work / "data")
        # The processes connect as the app role, as `memsvc serve` on the embedded default does.
        db_url = prepare_app_role(
            sqlalchemy_url(server.get_uri()), statement_timeout_s=STATEMENT_TIMEOUT_S
        )
        migrate(db_url)
        env = {
            **os.environ,
            "MEMSVC_DATABASE_URL": db_url,
            "MEMSVC_DATA_DIR": str(work / "data"),
            "MEMSVC_JOBS__IN_PROCESS_WORKER": "false",
            "MEMSVC_LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
        }
        key = (
            subprocess.run(
                memsvc_cmd("keys", "create", "--tenant", "load", "--name", "load"),
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        try:
            hosts = []
            for i in range(args.api):
                port = free_port()
                log = open(work / f"api{i}.log", "wb")  # noqa: SIM115
                procs.append(
                    subprocess.Popen(
                        memsvc_cmd("serve", "--port", str(port)), env=env, stdout=log, stderr=log
                    )
                )
                hosts.append(f"http://127.0.0.1:{port}")
            for i in range(args.workers):
                log = open(work / f"worker{i}.log", "wb")  # noqa: SIM115
                procs.append(
                    subprocess.Popen(memsvc_cmd("worker"), env=env, stdout=log, stderr=log)
                )
            for url, proc in zip(hosts, procs, strict=False):
                wait_http(url, proc)
            import httpx

            cubes = [
                httpx.post(
                    f"{hosts[0]}/v1/cubes",
                    json={"name": f"load-{i}"},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                ).json()["id"]
                for i in range(args.cubes)
            ]
            acks_file = work / "acks.jsonl"
            load_env = {
                **env,
                "MEMSVC_LOAD_HOSTS": ",".join(hosts),
                "MEMSVC_LOAD_KEY": key,
                "MEMSVC_LOAD_CUBES": ",".join(cubes),
                "MEMSVC_LOAD_RATE": str(args.rate),
                "MEMSVC_LOAD_ACKS": str(acks_file),
            }
            print(
                f"scaleout: {args.api} API + {args.workers} workers; locust {args.users} "
                f"users x {args.rate}/s for {args.duration} s",
                flush=True,
            )
            started = time.monotonic()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "locust",
                    "-f",
                    str(HERE / "locustfile.py"),
                    "--headless",
                    "-u",
                    str(args.users),
                    "-r",
                    str(args.users),
                    "-t",
                    f"{args.duration}s",
                    "--csv",
                    str(work / "stats"),
                    "--only-summary",
                    "--stop-timeout",
                    "30",
                    "--loglevel",
                    "WARNING",
                ],
                env=load_env,
                check=False,
            )
            load_s = time.monotonic() - started
            drained_s = drain(db_url, args.drain_timeout)
            rows = list(csv.DictReader(open(work / "stats_stats.csv")))  # noqa: SIM115
            acks = [json.loads(line) for line in acks_file.read_text().splitlines()]
            report = {
                "topology": {"api": args.api, "workers": args.workers},
                "load": {
                    "users": args.users,
                    "rate_per_user": args.rate,
                    "duration_s": round(load_s, 1),
                },
                "writes": percentile_row(rows, "POST /memories"),
                "searches": percentile_row(rows, "POST /search"),
                "all": percentile_row(rows, "Aggregated"),
                "transport_errors": percentile_row(rows, "POST /memories (transport)"),
                "queue_drained_after_s": round(drained_s, 1),
                "exactly_once": check_exactly_once(db_url, acks),
            }
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        del server
    print(json.dumps(report, indent=2))
    eo = report["exactly_once"]
    ok = (
        report["all"].get("failures", 1) == 0
        and not report["transport_errors"]
        and eo["missing"] == eo["duplicated"] == eo["wrong_id"] == eo["enriched_twice"] == 0
        and eo["stored_but_unacknowledged"] == 0
    )
    print("scaleout: OK" if ok else "scaleout: FAILED (see above)")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
