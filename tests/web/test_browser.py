"""The admin view in a real browser (Debian's chromium, headless) against uvicorn with real
Postgres and the real embedder. Screenshots of each page go to artifacts/screenshots/."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, text

from memsvc.config import REPO_ROOT
from memsvc.store.models import Link, Memory
from tests.conftest import LiveServer
from tests.web.helpers import add_dead_letter, add_links, db_engine, job_row

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO_ROOT / "artifacts" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]

TRAVEL = [
    ("Ann prefers window seats on long flights", "preference", "core", ["travel", "flights"]),
    ("Ann is vegetarian and avoids fish", "preference", "core", ["food"]),
    ("Ann flew Lisbon to Boston on 12 March", "event", "episodic", ["travel", "flights"]),
    ("Ann's passport expires in June 2027", "fact", "semantic", ["documents"]),
    ("Ann booked the Alfama guesthouse for May", "event", "episodic", ["travel", "hotels"]),
    ("Ann likes quiet hotels away from nightlife", "preference", "semantic", ["hotels"]),
    ("Ann's partner Luis is allergic to peanuts", "fact", "semantic", ["food", "family"]),
    ("Ann asked for a vegetarian meal on TP 217", "event", "episodic", ["food", "flights"]),
    ("Ann collects TAP Miles&Go points", "fact", "semantic", ["loyalty"]),
    ("Ann's daughter Marta starts school in September", "fact", "semantic", ["family"]),
    ("Ann wants to visit the Azores next summer", "preference", "semantic", ["travel"]),
    ("Ann cancelled the Porto rental car", "event", "episodic", ["travel", "cars"]),
    ("Ann dislikes red-eye flights", "preference", "semantic", ["flights"]),
    ("Ann's travel budget for 2026 is 6000 EUR", "fact", "core", ["budget"]),
]
SUPPORT = [
    "Customer 4411 reported a billing error in March",
    "Customer 4411 prefers email over phone",
    "Refund of 40 EUR issued to customer 4411",
]


@pytest.fixture()
def browser() -> Iterator[Any]:
    """A headless chromium page (skipped only when /usr/bin/chromium is absent)."""
    if not CHROMIUM.exists():
        pytest.skip("browser tests need /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = chromium.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))

        def console(msg: Any) -> None:
            # Error pages (404, 409) are expected here; the browser logs each as a failed load.
            if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
                problems.append(f"console: {msg.text}")

        page.on("console", console)
        page.problems = problems  # type: ignore[attr-defined]
        yield page
        context.close()
        chromium.close()


def shot(page: Any, name: str, *, full: bool = True) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    return path


def _api(live: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {live.admin_key}"}, timeout=60
    )


def seed(live: LiveServer, database_url: str) -> dict[str, Any]:
    """Two cubes of memories, an edit history, links, four weeks of growth, a dead letter."""
    with _api(live) as api:
        cube = api.post("/v1/cubes", json={"name": "travel-assistant"}).json()["id"]
        api.post("/v1/cubes", json={"name": "support-bot", "description": "helpdesk agent"})
        support = api.get("/v1/cubes").json()["items"][1]["id"]
        memories = [
            {
                "content": c,
                "kind": k,
                "layer": layer,
                "tags": tags,
                "user_id": "ann",
                "agent_id": "planner",
                "session_id": f"s{i // 4}",
                "sources": [
                    {"kind": "message", "speaker": "Ann", "text": c, "external_id": f"D{i}"}
                ],
            }
            for i, (c, k, layer, tags) in enumerate(TRAVEL)
        ]
        made = api.post(f"/v1/cubes/{cube}/memories", json={"memories": memories}).json()["items"]
        api.post(
            f"/v1/cubes/{support}/memories",
            json={"memories": [{"content": c, "user_id": "4411"} for c in SUPPORT]},
        )
        ids = [m["id"] for m in made]
        edited = ids[0]
        v = api.get(f"/v1/memories/{edited}").json()["version"]
        r = api.patch(
            f"/v1/memories/{edited}",
            json={
                "expected_version": v,
                "content": "Ann prefers aisle seats on long flights",
                "reason": "she said so in session 3",
            },
        )
        assert r.status_code == 200, r.text
        r = api.patch(
            f"/v1/memories/{edited}",
            json={
                "expected_version": v + 1,
                "content": "Ann prefers aisle seats on long flights, window on short hops",
                "tags": ["travel", "flights", "seats"],
            },
        )
        assert r.status_code == 200, r.text
        api.delete(f"/v1/memories/{ids[11]}")
    rel = ["related", "same_entity", "follows", "supports", "elaborates", "contradicts"]
    edges = [
        (ids[0], ids[12], "related", 0.8),
        (ids[0], ids[2], "supports", 0.7),
        (ids[2], ids[7], "follows", 0.9),
        (ids[1], ids[7], "supports", 0.9),
        (ids[1], ids[6], "related", 0.5),
        (ids[4], ids[5], "elaborates", 0.6),
        (ids[4], ids[10], "related", 0.4),
        (ids[2], ids[4], "follows", 0.6),
        (ids[8], ids[2], "related", 0.5),
        (ids[3], ids[10], "related", 0.3),
        (ids[9], ids[6], "same_entity", 0.6),
        (ids[13], ids[10], "supports", 0.5),
        (ids[13], ids[4], "related", 0.4),
        (ids[12], ids[2], "contradicts", 0.3),
        (ids[5], ids[10], "related", 0.35),
        (ids[8], ids[7], rel[0], 0.3),
    ]
    add_links(database_url, cube, edges)
    engine = db_engine(database_url)
    with engine.begin() as conn:
        # Spread the writes over four weeks so the growth charts have a shape.
        for i, mid in enumerate(ids):
            conn.execute(
                text(
                    "UPDATE memory SET created_at = now() - make_interval(days => :d) WHERE id = :m"
                ),
                {"d": [26, 25, 25, 21, 18, 18, 18, 12, 9, 7, 7, 3, 1, 0][i], "m": mid},
            )
    engine.dispose()
    job = add_dead_letter(
        database_url, ids[9], "litellm.Timeout: enrichment model did not answer within 60 s"
    )
    return {"cube": cube, "ids": ids, "edited": edited, "job": job}


def sign_in(page: Any, live: LiveServer) -> None:
    page.goto(live.url + "/admin/")
    assert "/admin/login" in page.url
    shot(page, "01-login")
    page.fill("#key", live.admin_key)
    page.click("button[type=submit]")
    page.wait_for_url(live.url + "/admin/")


def test_operator_tour(browser: Any, live_server: LiveServer, database_url: str) -> None:
    page = browser
    data = seed(live_server, database_url)
    cube, ids, edited = data["cube"], data["ids"], data["edited"]
    sign_in(page, live_server)

    # Cubes: counts, growth, jobs.
    row = page.locator(f'tr[data-cube="{cube}"]')
    assert row.locator("td.num").all_inner_texts() == ["13", "1"]
    assert "1 failed" in row.inner_text()
    shot(page, "02-cubes")

    # Memories: filter by kind and layer, then open one.
    row.locator("a.strong").click()
    page.wait_for_url(f"**/admin/cubes/{cube}")
    shot(page, "03-cube")
    page.fill("input[name=kind]", "preference")
    page.select_option("select[name=layer]", "core")
    page.locator("#filters button:text('Filter')").click()
    page.wait_for_url("**kind=preference**")
    rows = page.locator("#memories tbody tr[data-memory]")
    assert {r.get_attribute("data-memory") for r in rows.all()} == {ids[0], ids[1]}
    shot(page, "04-memories-filtered")

    # Search with explain.
    page.fill("input[name=q]", "aisle seats")
    page.locator(".search-row button").click()
    page.wait_for_selector("#results")
    first = page.locator("#results tbody tr").first
    assert "aisle seats" in first.inner_text()
    assert first.locator(".chan.ch-vector").count() == 1
    shot(page, "05-search")

    # One memory: the edit history and a diff between versions 1 and 3.
    first.locator("a").click()
    page.wait_for_url(f"**/admin/memories/{edited}")
    versions = page.locator("#versions tbody tr")
    assert versions.count() >= 3
    page.check('input[name=a][value="1"]')
    page.check('input[name=b][value="3"]')
    page.click("#compare")
    page.wait_for_url(lambda url: "a=1" in url and "b=3" in url)
    content = page.locator('#diff tr[data-field="content"]')
    assert content.locator("td.left del").first.inner_text().strip() == "window"
    assert "aisle" in content.locator("td.right ins").all_inner_texts()[0]
    assert page.locator('#diff tr[data-field="tags"] ins').inner_text() == ", seats"
    assert page.locator("#provenance").inner_text().count("update") == 2
    assert page.locator("#links tbody tr").count() == 2
    shot(page, "06-memory-diff")

    # Edit: a version; then a stale form shows the conflict.
    page.click("#edit summary")
    page.fill("textarea[name=content]", "Ann prefers aisle seats on every flight")
    with _api(live_server) as api:
        cur = api.get(f"/v1/memories/{edited}").json()["version"]
        api.patch(f"/v1/memories/{edited}", json={"expected_version": cur, "importance": 0.9})
    page.click("#save")
    assert page.locator("#edit-error").is_visible()
    assert "version_conflict" in page.locator("#edit-error").inner_text()
    shot(page, "07-edit-conflict")
    page.goto(f"{live_server.url}/admin/memories/{edited}")
    page.click("#edit summary")
    page.fill("textarea[name=content]", "Ann prefers aisle seats on every flight")
    page.click("#save")
    assert "Saved as a new version." in page.locator(".flash.ok").inner_text()
    assert page.inner_text("#content") == "Ann prefers aisle seats on every flight"

    # Delete and restore.
    page.on("dialog", lambda d: d.accept())
    page.click("#delete")
    assert page.locator(".badge.st-deleted").first.is_visible()
    page.click("#restore")
    assert page.locator(".badge.st-active").first.is_visible()

    # Graph: draw, colour, filter, click a node to open it.
    page.goto(f"{live_server.url}/admin/cubes/{cube}/graph")
    page.wait_for_selector('#graph[data-ready="1"]', timeout=30_000)
    n_nodes = page.evaluate("() => window.memsvcGraph.nodes().length")
    n_edges = page.evaluate("() => window.memsvcGraph.edges().length")
    assert n_nodes == 13 and n_edges == 16  # the deleted memory and its links are not drawn
    assert "follows" in page.locator("#relations").inner_text()
    shot(page, "08-graph", full=False)  # docs/admin-graph.png is a copy of this one
    page.uncheck('#relations input[data-relation="related"]')
    hidden = page.evaluate("() => window.memsvcGraph.edges('.hidden').length")
    assert hidden == 8
    page.select_option("#color-by", "kind")
    assert page.locator("#legend").inner_text().split() == ["event", "fact", "preference"]
    target = ids[2]
    pos = page.evaluate("(id) => window.memsvcGraph.getElementById(id).renderedPosition()", target)
    box = page.locator("#graph").bounding_box()
    page.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])
    page.wait_for_selector("#np-body:not([hidden])")
    assert page.inner_text("#np-content") == TRAVEL[2][0]
    shot(page, "09-graph-node", full=False)
    page.click("#np-open")
    page.wait_for_url(f"**/admin/memories/{target}")
    assert page.inner_text("#content") == TRAVEL[2][0]

    # Jobs: the dead letter with its error, retried.
    page.click("header nav a:text('Jobs')")
    letter = page.locator(f'#dead-letters tr[data-job="{data["job"]}"]')
    assert "enrichment model did not answer" in letter.inner_text()
    shot(page, "10-jobs")
    letter.locator("button.retry").click()
    page.wait_for_url("**/admin/jobs?msg=retried")
    assert page.locator(f'#dead-letters tr[data-job="{data["job"]}"]').count() == 0
    assert job_row(database_url, data["job"])[0] in ("queued", "running", "done")
    shot(page, "11-jobs-retried")

    # Errors are pages with the API's code; sign out ends the session.
    page.goto(f"{live_server.url}/admin/memories/{uuid.uuid4()}")
    assert page.inner_text("#error-code") == "not_found"
    shot(page, "12-error-404")
    page.goto(f"{live_server.url}/admin/")
    page.click("header button:text('Sign out')")
    page.wait_for_url("**/admin/login")
    page.goto(f"{live_server.url}/admin/jobs")
    assert "/admin/login" in page.url
    assert page.problems == []  # type: ignore[attr-defined]


def _big_cube(live: LiveServer, database_url: str, n: int, m: int) -> str:
    """A cube with ``n`` memories and ``m`` random links, written straight to the tables."""
    with _api(live) as api:
        cube = api.post("/v1/cubes", json={"name": "big"}).json()["id"]
    engine = db_engine(database_url)
    rnd = random.Random(7)
    ids = [uuid.uuid4() for _ in range(n)]
    layers, kinds = ["core", "semantic", "episodic"], ["fact", "event", "preference", "plan"]
    with engine.begin() as conn:
        tenant = conn.execute(
            text("SELECT tenant_id FROM cube WHERE id = :c"), {"c": cube}
        ).scalar_one()
        conn.execute(
            insert(Memory),
            [
                {
                    "id": mid,
                    "tenant_id": tenant,
                    "cube_id": uuid.UUID(cube),
                    "content": f"memory {i} about topic {i % 40}",
                    "kind": kinds[i % 4],
                    "layer": layers[i % 3],
                }
                for i, mid in enumerate(ids)
            ],
        )
        pairs: set[tuple[int, int]] = set()
        while len(pairs) < m:
            a = rnd.randrange(n)
            b = (a + rnd.choice([1, 2, 3, 40, rnd.randrange(n)])) % n
            if a != b:
                pairs.add((a, b))
        conn.execute(
            insert(Link),
            [
                {
                    "tenant_id": tenant,
                    "cube_id": uuid.UUID(cube),
                    "source_id": ids[a],
                    "target_id": ids[b],
                    "relation": ["related", "follows", "same_entity"][(a + b) % 3],
                    "weight": rnd.random(),
                    "created_by": "test:seed",
                }
                for a, b in pairs
            ],
        )
    engine.dispose()
    return cube


def test_graph_stays_usable_at_thousands_of_nodes(
    browser: Any, live_server: LiveServer, database_url: str
) -> None:
    page = browser
    cube = _big_cube(live_server, database_url, n=3000, m=6000)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/cubes/{cube}/graph")
    page.wait_for_selector('#graph[data-ready="1"]', timeout=60_000)
    assert page.evaluate("() => window.memsvcGraph.nodes().length") == 300
    assert "more available" in page.inner_text("#graph-status")
    page.fill("#limit", "2000")
    started = time.monotonic()
    page.click("#reload button[type=submit]")
    page.wait_for_function(
        "() => window.memsvcGraph.nodes().length === 2000"
        " && document.getElementById('graph').dataset.ready === '1'",
        timeout=120_000,
    )
    took = time.monotonic() - started
    shot(page, "13-graph-2000-nodes", full=False)
    # Pan and zoom still act with 2000 nodes drawn (timings are printed, never asserted:
    # bench/ measures speed, this checks behaviour).
    zoom, pan = page.evaluate("() => [window.memsvcGraph.zoom(), window.memsvcGraph.pan()]")
    page.evaluate(
        "() => { const cy = window.memsvcGraph; cy.zoom(cy.zoom() * 2); cy.panBy({x: 80, y: 40}); }"
    )
    page.mouse.wheel(0, -300)
    zoomed, panned = page.evaluate("() => [window.memsvcGraph.zoom(), window.memsvcGraph.pan()]")
    assert zoomed > zoom and panned != pan
    print(f"2000-node graph fetched, laid out and drawn in {took:.1f} s")
    # Expanding a node loads its neighbours on demand.
    before = page.evaluate("() => window.memsvcGraph.nodes().length")
    page.fill("#limit", "50")
    page.click("#reload button[type=submit]")
    page.wait_for_function("() => window.memsvcGraph.nodes().length === 50")
    page.wait_for_selector('#graph[data-ready="1"]')
    hub = page.evaluate("() => window.memsvcGraph.nodes().max(n => n.data('importance')).ele.id()")
    page.evaluate("(id) => window.memsvcGraph.getElementById(id).emit('dbltap')", hub)
    page.wait_for_function("(n) => window.memsvcGraph.nodes().length > n", arg=50)
    assert before == 2000
    assert page.problems == []  # type: ignore[attr-defined]


def test_ask_traces_in_the_browser(browser: Any, live_server: LiveServer) -> None:
    """From the cube page to its ask traces, one trace's steps and evidence, a memory."""
    page = browser
    with _api(live_server) as api:
        cube = api.post("/v1/cubes", json={"name": "ask-tour"}).json()["id"]
        memories = [{"content": c, "kind": k, "tags": t} for c, k, _, t in TRAVEL]
        made = api.post(f"/v1/cubes/{cube}/memories", json={"memories": memories}).json()
        ids = [m["id"] for m in made["items"]]
        body = {"question": "Which flights does Ann dislike, and where did Luis fly?", "top_k": 4}
        asked = api.post(
            f"/v1/cubes/{cube}/ask", json={**body, "mode": "heuristic", "budget": {"max_cycles": 1}}
        ).json()
        trace = api.get(f"/v1/traces/{asked['trace_id']}").json()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/cubes/{cube}")
    page.click("#traces-link")
    page.wait_for_url(f"**/admin/cubes/{cube}/traces")
    listed = page.locator("#traces tbody tr[data-trace]")
    assert [r.get_attribute("data-trace") for r in listed.all()] == [asked["trace_id"]]
    shot(page, "10-ask-traces")

    listed.first.locator("a").click()
    page.wait_for_url(f"**/admin/traces/{asked['trace_id']}")
    assert page.locator("#question").inner_text() == body["question"]
    assert page.locator("#mode").inner_text() == "heuristic"
    steps = page.locator("#steps tbody tr.step")
    assert [s.get_attribute("data-kind") for s in steps.all()] == [
        s["kind"] for s in trace["steps"]
    ]
    gate = page.locator("#steps tr.step-gate").first
    first_gate = next(s for s in trace["steps"] if s["kind"] == "gate")
    assert gate.locator(".decision").inner_text() == first_gate["decision"]
    assert gate.locator(".missing .tag").all_inner_texts() == first_gate["missing"]
    evidence = page.locator("#evidence li")
    assert [e.get_attribute("data-memory") for e in evidence.all()] == [
        e["memory"]["id"] for e in asked["evidence"]
    ]
    shot(page, "11-ask-trace")

    evidence.first.locator("a").click()
    page.wait_for_url(f"**/admin/memories/{asked['evidence'][0]['memory']['id']}")
    assert page.locator("#content").inner_text() in {m["content"] for m in memories}
    assert asked["evidence"][0]["memory"]["id"] in ids
    page.goto(f"{live_server.url}/admin/traces/{uuid.uuid4()}")
    assert page.locator("#error-code").inner_text() == "not_found"
    assert page.problems == []  # type: ignore[attr-defined]
