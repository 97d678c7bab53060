"""LLM faults cost bounded money: garbage gets one repair call then the heuristic result,
provider failures back off and open a breaker, a per-tenant hourly budget stops calls.
Every enrichment ends done (never a dead letter) with the fallback recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from memsvc.config import JobSettings, LLMSettings, Settings
from memsvc.llm import Breaker, LiteLLM
from memsvc.llm.fake import HANG, Registered, registered, server_error
from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import app_state, links_of, sql, versions, worker_for

pytestmark = pytest.mark.anyio

PROSE = "Sure! The keywords are Caroline and Lisbon, and it is about moving."
NOTE = json.dumps({"keywords": ["Caroline", "city"], "tags": ["home"], "context": "Where."})


class Script:
    """``mode``: ok | garbage | error (503) | hang."""

    def __init__(self) -> None:
        self.mode = "ok"

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        if self.mode == "garbage":
            return PROSE
        if self.mode == "error":
            raise server_error(503)
        if self.mode == "hang":
            return HANG
        if "building a note" in str(messages[1]["content"]):
            return NOTE
        return json.dumps({"links": [], "evolutions": []})


@pytest.fixture
def script() -> Iterator[tuple[Script, Registered]]:
    s = Script()
    with registered(s) as reg:
        yield s, reg


def settings_for(svc: Service, model: str, **llm: Any) -> Settings:
    base = app_state(svc).settings
    opts: dict[str, Any] = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, **llm}
    return base.model_copy(
        update={
            "llm": LLMSettings(model=model, **opts),
            "jobs": JobSettings(backoff_base_s=0.0, poll_interval_s=0.05),
        }
    )


def job_of(url: str, memory_id: str) -> tuple[str, int, dict[str, Any]]:
    [(status, attempts, result)] = sql(
        url,
        "SELECT status, attempts, result FROM job WHERE payload->>'memory_id' = :m",
        m=memory_id,
    )
    return status, attempts, result


async def memory(svc: Service, memory_id: str) -> dict[str, Any]:
    resp = await svc.client.get(f"/v1/memories/{memory_id}", headers=svc.auth())
    assert resp.status_code == 200, resp.text
    got: dict[str, Any] = resp.json()
    return got


async def test_garbage_output_gets_one_repair_then_the_heuristic_result(
    service: Service, database_url: str, script: tuple[Script, Registered]
) -> None:
    s, reg = script
    settings = settings_for(service, reg.model, max_retries=5)  # more than 1 is capped
    worker = worker_for(service, llm=LiteLLM(settings.llm), settings=settings)
    cube = await make_cube(service)
    s.mode = "garbage"

    [first] = await add(service, cube, {"content": "Caroline moved to Lisbon in June."})
    await worker.run_until_idle()
    calls = reg.handler.calls
    assert len(calls) == 2  # the call and one repair, not 3 tries x 5 attempts
    repair = str(calls[1].messages[-1]["content"])
    assert "Answer with JSON only" in repair and '"keywords"' in repair and PROSE in repair

    status, attempts, result = job_of(database_url, first["id"])
    assert (status, attempts) == ("done", 1)
    assert (result["fallback"], result["why"]) == ("heuristic", "invalid_llm_output")
    assert result["fallbacks"] == {"note": "invalid_llm_output"}
    assert (result["llm_calls"], result["invalid_outputs"]) == (2, 2)

    got = await memory(service, first["id"])
    assert got["enrichment_status"] == "done" and got["version"] == 2
    assert "lisbon" in got["keywords"] and got["context"]
    enrich = (await versions(service, first["id"]))[1]
    assert (enrich["change_kind"], enrich["policy"], enrich["model"]) == (
        "enrich",
        "a-mem:heuristic.v1",
        None,
    )
    assert enrich["reason"] == (
        "note construction (a-mem:heuristic.v1; LLM fallback: invalid_llm_output)"
    )

    # With a neighbour to link: still 2 calls for the whole enrichment (link_decide is
    # not tried once the provider gave garbage), links decided by the heuristic.
    [second] = await add(service, cube, {"content": "Caroline moved to Lisbon in June 2023."})
    await worker.run_until_idle()
    assert len(reg.handler.calls) == 4
    status, _, result = job_of(database_url, second["id"])
    assert status == "done"
    assert result["fallbacks"] == {"note": "invalid_llm_output", "links": "invalid_llm_output"}
    for link in await links_of(service, second["id"]):
        [(prov,)] = sql(database_url, "SELECT provenance FROM link WHERE id = :id", id=link["id"])
        assert prov["fallback"] == "invalid_llm_output" and prov["model"] is None
    counts = (await service.client.get("/v1/jobs", headers=service.auth())).json()["counts"]
    assert counts == {"queued": 0, "running": 0, "failed": 0, "done": 2}
    metrics = (await service.client.get("/metrics")).text
    assert 'memsvc_llm_fallbacks_total{task="enrich_note.v1",why="invalid_llm_output"}' in metrics


async def test_provider_5xx_backs_off_then_the_breaker_opens(
    service: Service, database_url: str, script: tuple[Script, Registered]
) -> None:
    s, reg = script
    settings = settings_for(
        service, reg.model, provider_retries=2, breaker_failures=3, breaker_cooldown_s=60
    )
    llm = LiteLLM(settings.llm)
    worker = worker_for(service, llm=llm, settings=settings)
    cube = await make_cube(service)
    s.mode = "error"

    [first] = await add(service, cube, {"content": "Caroline likes tea."})
    await worker.run_until_idle()
    assert len(reg.handler.calls) == 3  # 1 + 2 tries after backoff within the one call
    status, _, result = job_of(database_url, first["id"])
    assert (status, result["why"], result["provider_errors"]) == ("done", "llm_unavailable", 3)
    assert (await memory(service, first["id"]))["enrichment_status"] == "done"
    assert llm.breaker.opened == 1

    # Open: no call reaches the provider, the heuristic enriches, recorded as such.
    [second] = await add(service, cube, {"content": "Caroline likes coffee."})
    await worker.run_until_idle()
    assert len(reg.handler.calls) == 3
    status, _, result = job_of(database_url, second["id"])
    assert (status, result["why"], result["llm_calls"]) == ("done", "llm_circuit_open", 0)
    got = await memory(service, second["id"])
    assert got["enrichment_status"] == "done" and "coffee" in got["keywords"]


async def test_a_hanging_provider_times_out_and_is_not_waited_for(
    service: Service, database_url: str, script: tuple[Script, Registered]
) -> None:
    s, reg = script
    settings = settings_for(service, reg.model, timeout_s=0.2, provider_retries=1)
    worker = worker_for(service, llm=LiteLLM(settings.llm), settings=settings)
    cube = await make_cube(service)
    s.mode = "hang"
    [mem] = await add(service, cube, {"content": "Caroline plays chess."})
    started = time.monotonic()
    await worker.run_until_idle()
    assert time.monotonic() - started < 10
    assert len(reg.handler.calls) == 2
    status, _, result = job_of(database_url, mem["id"])
    assert (status, result["why"]) == ("done", "llm_unavailable")
    assert (await memory(service, mem["id"]))["enrichment_status"] == "done"


def test_breaker_closes_after_cooldown_and_a_success() -> None:
    b = Breaker(failures=2, cooldown_s=0.05)
    b.failure()
    assert b.allow()
    b.failure()
    assert not b.allow() and b.opened == 1
    time.sleep(0.06)
    assert b.allow()  # half-open: one probe goes through
    b.failure()
    assert not b.allow() and b.opened == 2  # a failed probe re-opens it at once
    time.sleep(0.06)
    b.success()
    b.failure()
    assert b.allow()
    assert Breaker(failures=0, cooldown_s=60).allow()


def test_backoff_is_exponential_with_jitter_and_bounded() -> None:
    llm = LiteLLM(LLMSettings(model="x/y", backoff_base_s=0.5, backoff_max_s=4.0))
    for n in range(8):
        delays = [llm._delay(n) for _ in range(50)]
        assert all(0 <= d <= min(4.0, 0.5 * 2**n) for d in delays)
        assert len(set(delays)) > 1


async def test_hourly_budget_stops_calls_per_tenant(
    service: Service, database_url: str, script: tuple[Script, Registered]
) -> None:
    _, reg = script
    settings = settings_for(service, reg.model, budget_calls_per_hour=3)
    worker = worker_for(service, llm=LiteLLM(settings.llm), settings=settings)
    cube = await make_cube(service)
    mems = []
    for text in ["Caroline likes tea.", "Caroline likes green tea.", "Caroline likes mint tea."]:
        [m] = await add(service, cube, {"content": text})
        mems.append(m)
    await worker.run_until_idle()
    # enrich_note for each, link_decide for those with neighbours: 3 calls allowed.
    assert len(reg.handler.calls) == 3
    whys = [job_of(database_url, m["id"])[2].get("why") for m in mems]
    assert whys.count("llm_budget") >= 1 and set(whys) <= {None, "llm_budget"}
    assert all(job_of(database_url, m["id"])[0] == "done" for m in mems)
    for m in mems:
        assert (await memory(service, m["id"]))["enrichment_status"] == "done"
    [(calls, tokens)] = sql(database_url, "SELECT calls, tokens FROM llm_usage")
    assert calls == 3 and tokens > 0
    metrics = (await service.client.get("/metrics")).text
    assert 'outcome="budget"' in metrics


async def test_token_budget_and_unlimited(
    service: Service, database_url: str, script: tuple[Script, Registered]
) -> None:
    _, reg = script
    settings = settings_for(service, reg.model, budget_tokens_per_hour=1)
    worker = worker_for(service, llm=LiteLLM(settings.llm), settings=settings)
    cube = await make_cube(service)
    [a] = await add(service, cube, {"content": "Caroline likes tea."})
    await worker.run_until_idle()
    [b] = await add(service, cube, {"content": "Melanie paints."})
    await worker.run_until_idle()
    assert len(reg.handler.calls) == 1  # the first call spends more than 1 token
    assert job_of(database_url, b["id"])[2]["why"] == "llm_budget"
    assert "why" not in job_of(database_url, a["id"])[2]

    unlimited = settings_for(service, reg.model, budget_tokens_per_hour=0, budget_calls_per_hour=0)
    worker = worker_for(service, llm=LiteLLM(unlimited.llm), settings=unlimited)
    [c] = await add(service, cube, {"content": "Melanie paints landscapes."})
    await worker.run_until_idle()
    assert "why" not in job_of(database_url, c["id"])[2]
    [(calls,)] = sql(database_url, "SELECT calls FROM llm_usage")
    assert calls >= 2
