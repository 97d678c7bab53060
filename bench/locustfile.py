"""Locust users for bench/scaleout.py: mixed writes and searches at a fixed rate.

Configured by environment (bench/scaleout.py sets it): MEMSVC_LOAD_HOSTS (comma-separated
API base URLs, one picked per request), MEMSVC_LOAD_KEY, MEMSVC_LOAD_CUBES (comma-separated
cube ids), MEMSVC_LOAD_RATE (tasks per second per user), MEMSVC_LOAD_ACKS (a file: every
acknowledged write is appended as one JSON line, for the exactly-once check afterwards).
Each write carries an Idempotency-Key and a unique marker in its content; a write that
fails in transport is retried with the same key, as the SDK does.
"""

from __future__ import annotations

import json
import os
import random
import threading
import uuid

from locust import HttpUser, constant_throughput, task

HOSTS = os.environ.get("MEMSVC_LOAD_HOSTS", "http://127.0.0.1:8080").split(",")
KEY = os.environ.get("MEMSVC_LOAD_KEY", "")
CUBES = [c for c in os.environ.get("MEMSVC_LOAD_CUBES", "").split(",") if c]
RATE = float(os.environ.get("MEMSVC_LOAD_RATE", "1"))
ACKS = os.environ.get("MEMSVC_LOAD_ACKS", "load-acks.jsonl")

SUBJECTS = ["Melanie", "Caroline", "Jordan", "the billing service", "the team", "Ann", "Pixel"]
VERBS = ["likes", "visited", "fixed", "painted", "moved to", "asked about", "planned"]
OBJECTS = [
    "a pottery class",
    "the lake at dawn",
    "a camping trip",
    "the invoice export",
    "jazz records",
    "a new apartment in Austin",
    "the release checklist",
    "window seats",
]
QUERIES = [
    "what does Melanie like?",
    "where did Caroline move?",
    "billing service problems",
    "camping with the kids",
    "music taste",
    "travel preferences",
    "release plans",
]

_lock = threading.Lock()


def _ack(record: dict[str, object]) -> None:
    with _lock, open(ACKS, "a") as f:
        f.write(json.dumps(record) + "\n")


class MemoryUser(HttpUser):
    """An agent that writes what it learns (3 in 4 tasks) and searches (1 in 4)."""

    host = HOSTS[0]
    wait_time = constant_throughput(RATE)

    def _url(self, path: str) -> str:
        return random.choice(HOSTS) + path

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEY}"}

    @task(3)
    def write(self) -> None:
        cube = random.choice(CUBES)
        marker = uuid.uuid4().hex
        n = random.choice([1, 1, 1, 4])
        body = {
            "memories": [
                {
                    "content": f"{random.choice(SUBJECTS)} {random.choice(VERBS)} "
                    f"{random.choice(OBJECTS)} [{marker}-{i}]",
                    "session_id": f"s{random.randint(1, 20)}",
                }
                for i in range(n)
            ]
        }
        headers = {**self._headers, "Idempotency-Key": f"load-{marker}"}
        for attempt in range(3):
            try:
                with self.client.post(
                    self._url(f"/v1/cubes/{cube}/memories"),
                    json=body,
                    headers=headers,
                    name="POST /memories",
                    catch_response=True,
                ) as r:
                    if r.status_code == 201:
                        ids = [m["id"] for m in r.json()["items"]]
                        _ack({"marker": marker, "cube": cube, "ids": ids, "attempts": attempt + 1})
                        r.success()
                        return
                    r.failure(f"{r.status_code}: {r.text[:200]}")
                    if r.status_code < 500:
                        return
            except Exception as exc:  # transport failure: maybe sent, so retry with the key
                self.environment.events.request.fire(
                    request_type="POST",
                    name="POST /memories (transport)",
                    response_time=0,
                    response_length=0,
                    exception=exc,
                    context={},
                )

    @task(1)
    def search(self) -> None:
        cube = random.choice(CUBES)
        with self.client.post(
            self._url(f"/v1/cubes/{cube}/search"),
            json={"query": random.choice(QUERIES), "top_k": 10},
            headers=self._headers,
            name="POST /search",
            catch_response=True,
        ) as r:
            if r.status_code == 200:
                r.success()
            else:
                r.failure(f"{r.status_code}: {r.text[:200]}")
