"""The admin view's ask traces over plain HTTP (the real app over ASGI): the list linked from
the cube page, a trace's steps and evidence, LLM steps and errors, isolation, hostile ids."""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, text

from memsvc.llm.fake import Registered
from memsvc.store.models import RetrievalTrace
from tests.api.helpers import add, make_cube, new_tenant_key
from tests.conftest import Service
from tests.retrieval.test_ask_llm import Script, llm, number_of  # noqa: F401 (llm: a fixture)
from tests.web.helpers import db_engine, page_error, sign_in

pytestmark = pytest.mark.anyio

TURNS = [
    ("Caroline", "I have been researching adoption agencies for months now."),
    ("Melanie", "I painted a sunrise over the lake last weekend."),
    ("Caroline", "Hope House. They really support LGBTQ parents."),
    ("Melanie", "We went camping with the kids at the beach."),
]


async def seed(service: Service) -> tuple[str, list[dict[str, Any]]]:
    cube = await make_cube(service, "conversation")
    mems = []
    for who, said in TURNS:
        source = {"kind": "message", "speaker": who, "text": said}
        [m] = await add(service, cube, {"content": said, "session_id": "s1", "sources": [source]})
        mems.append(m)
    return cube, mems


async def ask(service: Service, cube: str, **body: Any) -> dict[str, Any]:
    resp = await service.client.post(
        f"/v1/cubes/{cube}/ask", json={"mode": "heuristic", **body}, headers=service.auth()
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def rows(page: str, table: str) -> list[str]:
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[^>]*data-(?:kind|trace)=\"([^\"]+)\"", body)


def insert_trace(database_url: str, cube: str, **changes: Any) -> uuid.UUID:
    """A trace as an LLM-mode ask writes it (the scripted-LLM path is tested elsewhere)."""
    now = datetime.now(UTC)
    trace_id = uuid.uuid4()
    engine = db_engine(database_url)
    with engine.begin() as conn:
        tenant = conn.execute(
            text("SELECT tenant_id FROM cube WHERE id = :c"), {"c": cube}
        ).scalar_one()
        row: dict[str, Any] = {
            "id": trace_id,
            "tenant_id": tenant,
            "cube_id": uuid.UUID(cube),
            "question": "Where did <b>Caroline</b> adopt from?",
            "mode": "llm",
            "request": {},
            "steps": [
                {"kind": "retrieve", "cycle": 0, "at_ms": 0.5, "took_ms": 4.0, "queries": ["q"]},
                {
                    "kind": "llm",
                    "cycle": 0,
                    "at_ms": 5.0,
                    "took_ms": 900.0,
                    "decision": "failed",
                    "prompt": "ask_answer.v1",
                    "model": "scripted/model",
                    "tokens": 321,
                    "error": "invalid output after one repair: <script>alert(1)</script>",
                },
                {"kind": "stop", "cycle": 0, "at_ms": 906.0, "note": "deadline reached"},
            ],
            "response": {"answer": None, "cues": ["Caroline: adoption"], "evidence_ids": []},
            "memory_ids": [],
            "llm_calls": 2,
            "tokens": 321,
            "took_ms": 906.5,
            "stopped": "deadline",
            "created_at": now,
            "expires_at": now + timedelta(days=1),
        }
        conn.execute(insert(RetrievalTrace).values(**{**row, **changes}))
    engine.dispose()
    return trace_id


async def test_the_cube_page_links_to_its_traces_and_a_trace_shows_every_step(
    service: Service,
) -> None:
    cube, mems = await seed(service)
    covered = await ask(service, cube, question="Is Caroline researching adoption agencies?")
    probed = await ask(
        service,
        cube,
        question="Which adoption agency did Caroline pick in Zanzibar?",
        top_k=3,
        budget={"max_cycles": 1},
    )
    await sign_in(service.client, service.admin_key)
    cube_page = await service.client.get(f"/admin/cubes/{cube}")
    assert f'href="/admin/cubes/{cube}/traces"' in cube_page.text

    listed = await service.client.get(f"/admin/cubes/{cube}/traces")
    assert listed.status_code == 200
    assert rows(listed.text, "traces") == [probed["trace_id"], covered["trace_id"]]
    assert "Which adoption agency did Caroline pick in Zanzibar?" in listed.text
    assert f'href="/admin/traces/{probed["trace_id"]}"' in listed.text

    api = await service.client.get(f"/v1/traces/{probed['trace_id']}", headers=service.auth())
    trace = api.json()
    resp = await service.client.get(f"/admin/traces/{probed['trace_id']}")
    assert resp.status_code == 200
    page = resp.text
    assert "Which adoption agency did Caroline pick in Zanzibar?" in page
    assert rows(page, "steps") == [s["kind"] for s in trace["steps"]]
    gate = next(s for s in trace["steps"] if s["kind"] == "gate")
    for aspect in gate["covered"] + gate["missing"]:
        assert f'<span class="tag">{html.escape(aspect)}</span>' in page
    assert f"badge dc-{gate['decision']}" in page
    probe = next(s for s in trace["steps"] if s["kind"] == "probe")
    for query in probe["queries"]:
        assert f'<div class="quote">{html.escape(query)}</div>' in page
    # The evidence, in the order returned, each linking to its memory page.
    evidence = page.split('id="evidence"', 1)[1].split("</ol>", 1)[0]
    linked = re.findall(r'href="/admin/memories/([0-9a-f-]+)"', evidence)
    assert linked == [e["memory"]["id"] for e in probed["evidence"]]
    by_id = {m["id"]: m["content"] for m in mems}
    assert html.escape(by_id[linked[0]]) in evidence
    # The memory page the evidence links to opens.
    assert (await service.client.get(f"/admin/memories/{linked[0]}")).status_code == 200


async def test_llm_steps_errors_and_cues_are_shown_escaped(
    service: Service, database_url: str
) -> None:
    cube, _ = await seed(service)
    trace_id = insert_trace(database_url, cube)
    await sign_in(service.client, service.admin_key)
    page = (await service.client.get(f"/admin/traces/{trace_id}")).text
    assert rows(page, "steps") == ["retrieve", "llm", "stop"]
    assert "<code>ask_answer.v1</code>" in page and "<code>scripted/model</code>" in page
    assert "321 tokens" in page and "deadline reached" in page
    assert "Where did &lt;b&gt;Caroline&lt;/b&gt; adopt from?" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert '<dd id="stopped">deadline</dd>' in page
    assert "<li>Caroline: adoption</li>" in page
    assert "No evidence." in page


async def test_other_tenants_and_expired_traces_are_404_pages(
    service: Service, database_url: str
) -> None:
    cube, _ = await seed(service)
    mine = await ask(service, cube, question="Is Caroline researching adoption agencies?")
    expired = insert_trace(database_url, cube, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    other = await new_tenant_key(service, "tenant-b")
    await sign_in(service.client, other)
    for path in (f"/admin/traces/{mine['trace_id']}", f"/admin/cubes/{cube}/traces"):
        resp = await service.client.get(path)
        assert resp.status_code == 404, path
        assert page_error(resp)["code"] == "not_found"
        assert "Caroline" not in resp.text
    service.client.cookies.clear()
    await sign_in(service.client, service.admin_key)
    gone = await service.client.get(f"/admin/traces/{expired}")
    assert gone.status_code == 404 and page_error(gone)["message"] == "trace not found"
    listed = await service.client.get(f"/admin/cubes/{cube}/traces")
    assert rows(listed.text, "traces") == [mine["trace_id"]]


@pytest.mark.parametrize(
    "trace_id",
    ["not-a-uuid", "%00", "%ED%A0%80", "9" * 400, "00000000-0000-0000-0000-000000000000"],
)
async def test_hostile_trace_ids_are_4xx_pages(service: Service, trace_id: str) -> None:
    await sign_in(service.client, service.admin_key)
    resp = await service.client.get(f"/admin/traces/{trace_id}")
    assert 400 <= resp.status_code < 500, resp.text[:300]
    if "%" not in trace_id:  # NUL and bad UTF-8 are refused before routing, as JSON
        assert page_error(resp)["code"] in {"validation_error", "not_found"}
    bad_cube = await service.client.get(f"/admin/cubes/{trace_id}/traces")
    assert 400 <= bad_cube.status_code < 500


async def test_signed_out_trace_pages_redirect_to_sign_in(service: Service) -> None:
    resp = await service.client.get(f"/admin/traces/{uuid.uuid4()}")
    assert resp.status_code in {302, 303, 307} and "/admin/login" in resp.headers["location"]


async def test_an_llm_answered_trace_shows_the_answer_prompt_and_tokens(
    service: Service,
    llm: tuple[Script, Registered],  # noqa: F811 (the imported fixture)
) -> None:
    script, _ = llm
    cube, _ = await seed(service)
    script.reply = lambda prompt, n: json.dumps(
        {"answer": "Hope House", "used": [number_of(prompt, "Hope House.")], "cues": ["named"]}
    )
    resp = await service.client.post(
        f"/v1/cubes/{cube}/ask",
        json={"question": "Which adoption agency did Caroline pick?", "top_k": 2},
        headers=service.auth(),
    )
    body = resp.json()
    assert body["mode"] == "llm" and body["answer"] == "Hope House", body
    trace = (
        await service.client.get(f"/v1/traces/{body['trace_id']}", headers=service.auth())
    ).json()
    step = next(s for s in trace["steps"] if s["kind"] == "llm")
    await sign_in(service.client, service.admin_key)
    page = (await service.client.get(f"/admin/traces/{body['trace_id']}")).text
    assert rows(page, "steps") == [s["kind"] for s in trace["steps"]]
    assert '<dd id="answer">Hope House</dd>' in page
    assert (
        f"<code>{step['prompt']}</code>" in page and f"<div>{step['tokens']} tokens</div>" in page
    )
    assert f"badge dc-{step['decision']}" in page
    assert "<li>named</li>" in page
