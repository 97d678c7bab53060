"""LLM mode through litellm with a scripted fake provider: links, evolution, dead letters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from memsvc.config import JobSettings, LLMSettings, Settings
from memsvc.graph.builders import LLMBuilder
from memsvc.llm import LiteLLM
from memsvc.llm.fake import Registered, registered
from tests.api.helpers import add, assert_error, make_cube, new_tenant_key
from tests.conftest import Service
from tests.graph.helpers import app_state, links_of, sql, versions, worker_for

pytestmark = pytest.mark.anyio


class Script:
    """Replies by prompt: a note for ``enrich_note``, scripted decisions for ``link_decide``."""

    def __init__(self) -> None:
        self.links: list[dict[str, Any]] = []
        self.evolutions: list[dict[str, Any]] = []
        self.invalid_left = 0

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        if self.invalid_left:
            self.invalid_left -= 1
            return "Sure! Here are the keywords: Caroline, Lisbon"
        prompt = str(messages[1]["content"])
        if "building a note" in prompt:
            return json.dumps(
                {"keywords": ["Caroline", "city"], "tags": ["Home", "home"], "context": "Where."}
            )
        return json.dumps({"links": self.links, "evolutions": self.evolutions})


@pytest.fixture
def script() -> Iterator[tuple[Script, Registered]]:
    s = Script()
    with registered(s) as reg:
        yield s, reg


def llm_settings(svc: Service, model: str, *, max_retries: int = 1) -> Settings:
    base = app_state(svc).settings
    return base.model_copy(
        update={
            "llm": LLMSettings(model=model, max_retries=max_retries),
            "jobs": JobSettings(backoff_base_s=0.0, poll_interval_s=0.05),
        }
    )


async def test_links_and_evolution_versions_with_provenance(
    service: Service, database_url: str, script: tuple[Script, Registered]
) -> None:
    s, reg = script
    settings = llm_settings(service, reg.model)
    worker = worker_for(service, llm=LiteLLM(settings.llm), settings=settings)
    cube = await make_cube(service)
    [old] = await add(
        service,
        cube,
        {"content": "Caroline lives in Berlin.", "valid_from": "2022-01-01T00:00:00Z"},
    )
    await worker.run_until_idle()
    assert len(reg.handler.calls) == 1  # no neighbours yet: enrich_note only
    got = (await service.client.get(f"/v1/memories/{old['id']}", headers=service.auth())).json()
    assert (got["keywords"], got["tags"], got["context"]) == (
        ["Caroline", "city"],
        ["home"],
        "Where.",
    )

    s.links = [
        {
            "candidate": 1,
            "relation": "supersedes",
            "weight": 0.9,
            "reason": "she moved",
            "same_subject": True,
        }
    ]
    s.evolutions = [
        {
            "candidate": 1,
            "context": "Where Caroline lived until 2023.",
            "tags": ["history"],
            "reason": "now past",
        }
    ]
    [new] = await add(
        service,
        cube,
        {"content": "Caroline moved to Lisbon.", "valid_from": "2023-06-01T00:00:00Z"},
    )
    await worker.run_until_idle()
    assert len(reg.handler.calls) == 3  # enrich_note + link_decide for the second insert

    [link] = await links_of(service, new["id"])
    assert (link["source_id"], link["target_id"], link["relation"]) == (
        new["id"],
        old["id"],
        "supersedes",
    )
    assert (link["weight"], link["reason"], link["created_by"]) == (
        0.9,
        "she moved",
        "system:enrich",
    )
    [(prov,)] = sql(database_url, "SELECT provenance FROM link WHERE id = :id", id=link["id"])
    [(job_id, result)] = sql(
        database_url,
        "SELECT id, result FROM job WHERE payload->>'memory_id' = :m",
        m=new["id"],
    )
    assert prov == {"job_id": job_id, "model": reg.model, "prompt_version": "link_decide.v1"}
    assert result["llm_calls"] == 2 and result["prompt_tokens"] > 0
    assert result["llm_calls_by_task"] == {"enrich_note.v1": 1, "link_decide.v1": 1}

    vers = await versions(service, old["id"])
    assert [v["change_kind"] for v in vers] == ["create", "enrich", "evolve"]
    evolve = vers[2]
    assert evolve["caused_by"] == new["id"]
    assert (evolve["actor"], evolve["policy"], evolve["model"]) == (
        "system:evolve",
        "a-mem:llm.v1",
        reg.model,
    )
    assert evolve["reason"] == "now past (link_decide.v1)"
    assert evolve["context"] == "Where Caroline lived until 2023."
    assert evolve["tags"] == ["home", "history"]
    assert evolve["valid_to"] == "2023-06-01T00:00:00Z"
    assert evolve["content"] == "Caroline lives in Berlin."
    enrich = vers[1]
    assert (enrich["policy"], enrich["model"]) == ("a-mem:llm.v1", reg.model)
    assert enrich["reason"] == "note construction (enrich_note.v1)"

    metrics = (await service.client.get("/metrics")).text
    assert 'memsvc_llm_calls_total{outcome="ok",task="link_decide.v1"}' in metrics
    assert 'memsvc_job_llm_calls_total{kind="enrich"}' in metrics
    assert 'memsvc_jobs_total{kind="enrich",outcome="done"}' in metrics

    # Re-running the finished job changes nothing.
    sql(database_url, "UPDATE job SET status = 'queued' WHERE id = :id", id=job_id)
    await worker.run_until_idle()
    assert len(await versions(service, old["id"])) == 3
    assert len(await links_of(service, new["id"])) == 1


async def test_invalid_output_is_repaired_and_failed_jobs_are_parked_and_retryable(
    service: Service, script: tuple[Script, Registered], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, reg = script
    settings = llm_settings(service, reg.model, max_retries=1)
    worker = worker_for(service, llm=LiteLLM(settings.llm), settings=settings)
    cube = await make_cube(service)

    # One invalid reply: retried within the same try, the job succeeds.
    s.invalid_left = 1
    [first] = await add(service, cube, {"content": "Caroline likes tea."})
    await worker.run_until_idle()
    jobs = (await service.client.get("/v1/jobs", headers=service.auth())).json()
    assert jobs == {
        "counts": {"queued": 0, "running": 0, "failed": 0, "done": 1},
        "dead_letters": [],
        "items": [],
        "next_cursor": None,
    }

    # A failing enrichment (not the LLM's answers, which fall back to the heuristic:
    # tests/graph/test_llm_faults.py) is retried, then parked as a dead letter.
    broken = {"on": True}

    async def construct_fails(self: LLMBuilder, note: Any, usage: Any) -> Any:
        if broken["on"]:
            raise RuntimeError("enrichment broke")
        return await real_construct(self, note, usage)

    real_construct = LLMBuilder.construct
    monkeypatch.setattr(LLMBuilder, "construct", construct_fails)
    [mem] = await add(service, cube, {"content": "Caroline likes coffee."})
    calls_before = len(reg.handler.calls)
    await worker.run_until_idle()
    assert len(reg.handler.calls) == calls_before
    jobs = (await service.client.get("/v1/jobs", headers=service.auth())).json()
    assert jobs["counts"] == {"queued": 0, "running": 0, "failed": 1, "done": 1}
    [dead] = jobs["dead_letters"]
    assert (dead["kind"], dead["payload"], dead["attempts"], dead["status"]) == (
        "enrich",
        {"memory_id": mem["id"]},
        5,
        "failed",
    )
    assert dead["last_error"] == "RuntimeError: enrichment broke"
    got = (await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())).json()
    assert got["enrichment_status"] == "failed" and got["version"] == 1

    failed = await service.client.get("/v1/jobs?status=failed", headers=service.auth())
    assert [j["id"] for j in failed.json()["items"]] == [dead["id"]]

    # Other tenants cannot see or retry it; a done job cannot be retried.
    other = await new_tenant_key(service, "other")
    assert_error(
        await service.client.post(f"/v1/jobs/{dead['id']}/retry", headers=service.auth(other)),
        404,
        "not_found",
    )
    assert (await service.client.get("/v1/jobs", headers=service.auth(other))).json()["counts"] == {
        "queued": 0,
        "running": 0,
        "failed": 0,
        "done": 0,
    }
    done_id = next(
        j["id"]
        for j in (await service.client.get("/v1/jobs?status=done", headers=service.auth())).json()[
            "items"
        ]
    )
    assert_error(
        await service.client.post(f"/v1/jobs/{done_id}/retry", headers=service.auth()),
        409,
        "job_not_failed",
    )

    # Fixed: retry puts it back in the queue and it completes.
    broken["on"] = False
    retried = await service.client.post(f"/v1/jobs/{dead['id']}/retry", headers=service.auth())
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("queued", 0)
    await worker.run_until_idle()
    got = (await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())).json()
    assert got["enrichment_status"] == "done" and got["keywords"] == ["Caroline", "city"]
    counts = (await service.client.get("/v1/jobs", headers=service.auth())).json()["counts"]
    assert counts == {"queued": 0, "running": 0, "failed": 0, "done": 2}
    assert first["id"] != mem["id"]
