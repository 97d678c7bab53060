"""The admin view over plain HTTP (the real app over ASGI): sessions, CSRF, isolation, errors,
and each page against real data."""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote

import pytest

from memsvc.store.tenants import Principal
from memsvc.web import session as sessions
from tests.api.helpers import add, make_cube, new_tenant_key
from tests.conftest import Service
from tests.web.helpers import (
    add_dead_letter,
    add_links,
    csrf_of,
    job_row,
    page_error,
    sign_in,
)

pytestmark = pytest.mark.anyio


async def _version(service: Service, memory_id: str) -> int:
    resp = await service.client.get(f"/v1/memories/{memory_id}", headers=service.auth())
    return int(resp.json()["version"])


async def test_pages_without_a_session_redirect_to_sign_in(service: Service) -> None:
    for path in ("/admin/", "/admin/jobs", f"/admin/memories/{uuid.uuid4()}", "/admin/cubes/x"):
        resp = await service.client.get(path)
        assert resp.status_code == 303, (path, resp.text)
        assert resp.headers["location"].startswith("/admin/login?next=")
        assert unquote(resp.headers["location"].split("next=")[1]) == path
    bare = await service.client.get("/admin")
    assert (bare.status_code, bare.headers["location"]) == (307, "/admin/")
    api = await service.client.get(f"/admin/api/cubes/{uuid.uuid4()}/graph")
    assert api.status_code == 401
    assert api.json() == {
        "error": {"code": "unauthorized", "message": "sign in first", "detail": None}
    }
    post = await service.client.post(f"/admin/memories/{uuid.uuid4()}/delete", data={"csrf": "x"})
    assert (post.status_code, post.headers["location"]) == (303, "/admin/login")


async def test_repeated_failed_sign_ins_are_throttled(service: Service) -> None:
    form = await service.client.get("/admin/login")
    token = csrf_of(form.text)
    for _ in range(10):
        bad = await service.client.post(
            "/admin/login", data={"csrf": token, "key": "msk_000000000000_nope"}
        )
        assert bad.status_code == 401
        token = csrf_of(bad.text)  # each form carries a fresh token
    # The eleventh try is refused before the key is even checked — the right key too.
    blocked = await service.client.post(
        "/admin/login", data={"csrf": token, "key": service.admin_key}
    )
    assert blocked.status_code == 429
    err = page_error(blocked)
    assert err["code"] == "rate_limited" and 0 < err["detail"]["retry_after_s"] <= 300
    assert "memsvc_admin=" not in blocked.headers.get("set-cookie", "")


async def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it(
    service: Service,
) -> None:
    form = await service.client.get("/admin/login")
    assert form.headers["content-security-policy"].startswith("default-src 'self'")
    bad = await service.client.post(
        "/admin/login", data={"csrf": csrf_of(form.text), "key": "msk_000000000000_nope"}
    )
    assert bad.status_code == 401 and "invalid or revoked API key" in bad.text
    form = await service.client.get("/admin/login?next=/admin/jobs")
    ok = await service.client.post(
        "/admin/login",
        data={"csrf": csrf_of(form.text), "key": service.admin_key, "next": "/admin/jobs"},
    )
    assert (ok.status_code, ok.headers["location"]) == (303, "/admin/jobs")
    cookie = next(
        v
        for k, v in ok.headers.multi_items()
        if k == "set-cookie" and v.startswith("memsvc_admin=")
    )
    attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path=/admin", "samesite=strict"} <= attrs, cookie
    assert service.admin_key not in cookie
    home = await service.client.get("/admin/")
    assert home.status_code == 200 and "tenant <b>default</b>" in home.text
    out = await service.client.post("/admin/logout", data={"csrf": csrf_of(home.text)})
    assert (out.status_code, out.headers["location"]) == (303, "/admin/login")
    assert (await service.client.get("/admin/")).status_code == 303


async def test_sign_out_revokes_the_session_server_side(service: Service) -> None:
    await sign_in(service.client, service.admin_key)
    kept = service.client.cookies.get("memsvc_admin")
    assert kept
    home = await service.client.get("/admin/")
    assert home.status_code == 200
    out = await service.client.post("/admin/logout", data={"csrf": csrf_of(home.text)})
    assert out.status_code == 303
    # A copy of the cookie kept from before sign-out (a stolen one, say) works no more.
    service.client.cookies.set("memsvc_admin", kept, path="/admin")
    again = await service.client.get("/admin/")
    assert again.status_code == 303 and again.headers["location"].startswith("/admin/login")
    api = await service.client.get(f"/admin/api/cubes/{uuid.uuid4()}/graph")
    assert api.status_code == 401
    login = await service.client.get("/admin/login")  # the form, not a redirect loop
    assert login.status_code == 200 and "csrf" in login.text
    # Signing in again starts a new session that works.
    service.client.cookies.clear()
    await sign_in(service.client, service.admin_key)
    assert (await service.client.get("/admin/")).status_code == 200


async def test_open_redirects_and_forged_cookies_are_refused(service: Service) -> None:
    form = await service.client.get("/admin/login")
    resp = await service.client.post(
        "/admin/login",
        data={"csrf": csrf_of(form.text), "key": service.admin_key, "next": "//evil.example/x"},
    )
    assert resp.headers["location"] == "/admin/"
    value = service.client.cookies.get("memsvc_admin")
    assert value
    payload, sig = value.split(".")
    service.client.cookies.set("memsvc_admin", payload + "." + sig[::-1], path="/admin")
    assert (await service.client.get("/admin/")).status_code == 303
    assert sessions.decode(b"k" * 32, value) is None


async def test_login_and_changes_need_the_csrf_token(service: Service) -> None:
    form = await service.client.get("/admin/login")
    no_token = await service.client.post("/admin/login", data={"key": service.admin_key})
    assert no_token.status_code == 403
    assert page_error(no_token)["code"] == "csrf_failed"
    assert csrf_of(form.text)
    csrf = await sign_in(service.client, service.admin_key)
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "keep me"})
    for data in ({}, {"csrf": "forged"}):
        resp = await service.client.post(f"/admin/memories/{mem['id']}/delete", data=data)
        assert resp.status_code == 403
        err = page_error(resp)
        assert err == {
            "code": "csrf_failed",
            "message": "CSRF token missing or invalid; reload the page",
            "detail": None,
        }
    still = await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())
    assert still.json()["status"] == "active"
    done = await service.client.post(f"/admin/memories/{mem['id']}/delete", data={"csrf": csrf})
    assert done.status_code == 303
    gone = await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())
    assert gone.json()["status"] == "deleted"


async def test_other_tenants_ids_are_404_pages_like_the_api(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "tenant A's secret"})
    other = await new_tenant_key(service, "tenant-b")
    csrf = await sign_in(service.client, other)
    api = await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth(other))
    for path in (f"/admin/memories/{mem['id']}", f"/admin/cubes/{cube}/graph"):
        resp = await service.client.get(path)
        assert resp.status_code == 404
        assert "tenant A's secret" not in resp.text
        err = page_error(resp)
        assert err["code"] == "not_found"
        if "memories" in path:
            assert err == api.json()["error"]
    graph = await service.client.get(f"/admin/api/cubes/{cube}/graph")
    assert graph.status_code == 404 and graph.json()["error"]["code"] == "not_found"
    for action in ("delete", "restore", "edit"):
        resp = await service.client.post(
            f"/admin/memories/{mem['id']}/{action}",
            data={"csrf": csrf, "content": "stolen", "expected_version": "1"},
        )
        assert resp.status_code == 404, action
        assert page_error(resp)["code"] == "not_found"
    home = await service.client.get("/admin/")
    assert cube not in home.text
    check = await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())
    assert check.json()["content"] == "tenant A's secret"
    assert check.json()["status"] == "active"


async def test_error_pages_keep_the_api_codes(service: Service) -> None:
    await sign_in(service.client, service.admin_key)
    unknown = await service.client.get("/admin/no/such/page")
    assert unknown.status_code == 404 and page_error(unknown)["code"] == "not_found"
    bad_id = await service.client.get("/admin/memories/not-a-uuid")
    assert bad_id.status_code == 422
    assert page_error(bad_id)["code"] == "validation_error"
    cube = await make_cube(service)
    bad_filter = await service.client.get(f"/admin/cubes/{cube}?layer=nope")
    assert bad_filter.status_code == 400
    assert page_error(bad_filter)["code"] == "invalid_filter"
    bad_cursor = await service.client.get(f"/admin/cubes/{cube}?cursor=%%%")
    api = await service.client.get(f"/v1/cubes/{cube}/memories?cursor=%%%", headers=service.auth())
    assert bad_cursor.status_code == api.status_code == 400
    assert page_error(bad_cursor) == api.json()["error"]
    asset = await service.client.get("/admin/static/graph.js")
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    assert (await service.client.get("/admin/static/..%2Fsession.py")).status_code == 404


async def test_revoking_the_key_ends_its_sessions(service: Service) -> None:
    made = await service.client.post("/v1/keys", json={"name": "ops"}, headers=service.auth())
    await sign_in(service.client, made.json()["key"])
    assert (await service.client.get("/admin/")).status_code == 200
    await service.client.delete(f"/v1/keys/{made.json()['id']}", headers=service.auth())
    assert (await service.client.get("/admin/")).status_code == 303


async def test_memory_table_filters_and_pages_through_everything(service: Service) -> None:
    cube = await make_cube(service)
    made = await add(
        service,
        cube,
        *[
            {
                "content": f"note {i}",
                "kind": "event" if i % 3 == 0 else "fact",
                "layer": "episodic" if i % 2 else "semantic",
                "tags": ["even"] if i % 2 == 0 else ["odd"],
                "user_id": "u1" if i < 5 else "u2",
            }
            for i in range(11)
        ],
    )
    await sign_in(service.client, service.admin_key)
    seen: list[str] = []
    url: str | None = f"/admin/cubes/{cube}?limit=4"
    while url:
        resp = await service.client.get(url)
        assert resp.status_code == 200, resp.text
        seen += re.findall(r'<tr data-memory="([0-9a-f-]+)">', resp.text)
        nxt = re.search(r'id="next-page" href="([^"]+)"', resp.text)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == [m["id"] for m in made]
    resp = await service.client.get(f"/admin/cubes/{cube}?kind=event&tag=even&user_id=u2")
    rows = re.findall(r'<tr data-memory="([0-9a-f-]+)">', resp.text)
    assert rows == [made[6]["id"]]


async def test_search_shows_why_each_result_matched(service: Service) -> None:
    cube = await make_cube(service)
    await add(
        service,
        cube,
        {"content": "Caroline adopted a golden retriever named Max"},
        {"content": "The quarterly report is due on Friday"},
    )
    await sign_in(service.client, service.admin_key)
    resp = await service.client.get(f"/admin/cubes/{cube}?q=golden+retriever&preset=hybrid")
    assert resp.status_code == 200, resp.text
    first = resp.text.split('<table class="grid" id="results">')[1].split("</tr>")[1]
    assert "Caroline adopted a golden retriever" in first
    assert "vector #1" in first and "fulltext #1" in first


async def test_edit_writes_a_version_and_a_stale_edit_shows_the_conflict(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Likes green tea", "tags": ["drinks"]})
    csrf = await sign_in(service.client, service.admin_key)
    v = await _version(service, mem["id"])
    fields = {"csrf": csrf, "kind": "fact", "layer": "semantic", "importance": "0.5"}
    edit = {**fields, "content": "Likes jasmine green tea", "tags": "drinks, tea"}
    resp = await service.client.post(
        f"/admin/memories/{mem['id']}/edit", data={**edit, "expected_version": str(v)}
    )
    assert (resp.status_code, resp.headers["location"]) == (
        303,
        f"/admin/memories/{mem['id']}?msg=saved",
    )
    now = (await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())).json()
    assert (now["content"], now["tags"], now["version"]) == (
        "Likes jasmine green tea",
        ["drinks", "tea"],
        v + 1,
    )
    stale = await service.client.post(
        f"/admin/memories/{mem['id']}/edit",
        data={**edit, "content": "Likes coffee", "expected_version": str(v)},
    )
    assert stale.status_code == 409
    assert "version_conflict" in stale.text
    assert f"memory is at version {v + 1}, not {v}" in stale.text
    assert "Likes coffee</textarea>" in stale.text  # the operator's text is kept
    invalid = await service.client.post(
        f"/admin/memories/{mem['id']}/edit",
        data={**edit, "content": "x", "kind": "Not A Kind", "expected_version": str(v + 1)},
    )
    assert invalid.status_code == 422 and "validation_error" in invalid.text
    page = await service.client.get(f"/admin/memories/{mem['id']}?a={v}&b={v + 1}")
    assert "<del>" not in page.text.split('id="diff"')[0]
    diff = page.text.split('id="diff"')[1]
    assert re.search(r"<ins>\s*jasmine\s*</ins>", diff), diff
    assert '<tr class="changed" data-field="tags">' in diff


async def test_graph_json_is_scoped_and_bounded(service: Service, database_url: str) -> None:
    cube = await make_cube(service)
    mems = await add(service, cube, *[{"content": f"node {i}"} for i in range(6)])
    ids = [m["id"] for m in mems]
    add_links(
        database_url,
        cube,
        [
            (ids[0], ids[1], "related", 0.9),
            (ids[1], ids[2], "follows", 0.5),
            (ids[2], ids[3], "supports", 0.4),
            (ids[4], ids[5], "same_entity", 1.0),
        ],
    )
    await sign_in(service.client, service.admin_key)
    resp = await service.client.get(f"/admin/api/cubes/{cube}/graph?center={ids[0]}&depth=2")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [n["id"] for n in body["nodes"]] == ids[:3]
    assert {(e["source_id"], e["target_id"], e["relation"]) for e in body["edges"]} == {
        (ids[0], ids[1], "related"),
        (ids[1], ids[2], "follows"),
    }
    assert body["nodes"][0]["content"] == "node 0"
    assert body["relations"] == ["follows", "related", "same_entity", "supports"]
    assert body["memory_count"] == 6
    small = (await service.client.get(f"/admin/api/cubes/{cube}/graph?limit=2")).json()
    assert len(small["nodes"]) == 2 and small["truncated"] is True
    page = await service.client.get(f"/admin/cubes/{cube}/graph")
    assert page.status_code == 200 and "cytoscape.min.js" in page.text
    memory = await service.client.get(f"/admin/memories/{ids[1]}")
    assert memory.text.count('class="badge rel"') == 2


async def test_dead_letters_are_listed_and_retried(service: Service, database_url: str) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "enrich me"})
    job = add_dead_letter(database_url, mem["id"], "RuntimeError: model endpoint timed out")
    csrf = await sign_in(service.client, service.admin_key)
    home = await service.client.get("/admin/")
    assert "1 failed</a>" in home.text
    page = await service.client.get("/admin/jobs")
    assert f'<tr data-job="{job}">' in page.text
    assert "RuntimeError: model endpoint timed out" in page.text
    resp = await service.client.post(f"/admin/jobs/{job}/retry", data={"csrf": csrf})
    assert (resp.status_code, resp.headers["location"]) == (303, "/admin/jobs?msg=retried")
    assert job_row(database_url, job) == ("queued", 0)
    again = await service.client.post(f"/admin/jobs/{job}/retry", data={"csrf": csrf})
    assert again.status_code == 409 and page_error(again)["code"] == "job_not_failed"


async def test_cube_overview_counts(service: Service) -> None:
    cube = await make_cube(service, "counted")
    mems = await add(service, cube, *[{"content": f"m{i}"} for i in range(3)])
    await service.client.delete(f"/v1/memories/{mems[0]['id']}", headers=service.auth())
    await sign_in(service.client, service.admin_key)
    resp = await service.client.get("/admin/")
    row = resp.text.split(f'<tr data-cube="{cube}">')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
    assert cells == ["2", "1"]
    assert "+3" in row


def test_session_cookies_expire_and_cannot_be_altered() -> None:
    key = b"k" * 32
    principal = Principal(tenant_id=uuid.uuid4(), key_id=uuid.uuid4(), role="member")
    value = sessions.encode(key, principal, "acme", now=1000.0)
    web = sessions.decode(key, value, now=1001.0)
    assert web is not None and (web.principal, web.tenant_name) == (principal, "acme")
    assert sessions.decode(key, value, now=1000.0 + sessions.TTL_S) is None
    assert sessions.decode(b"x" * 32, value, now=1001.0) is None
    payload, sig = value.split(".")
    assert sessions.decode(key, payload[:-2] + "AA." + sig, now=1001.0) is None
    assert not sessions.token_matches(web.csrf, None)
    assert not sessions.token_matches(web.csrf, "")
    assert sessions.token_matches(web.csrf, web.csrf)


async def test_memory_page_shows_the_write_decisions_behind_each_version(
    service: Service,
) -> None:
    cube = await make_cube(service)
    resp = await service.client.post(
        f"/v1/cubes/{cube}/ingest",
        json={
            "policy": "learned",
            "messages": [
                {"role": "user", "name": "Ann", "content": "Did you see the <b>comet</b>?"},
                {"role": "user", "name": "Bo", "content": "Yes, from the roof last night!"},
            ],
        },
        headers=service.auth(),
    )
    assert resp.status_code == 200, resp.text
    mid = resp.json()["decisions"][0]["memory_id"]
    await sign_in(service.client, service.admin_key)
    page = await service.client.get(f"/admin/memories/{mid}")
    assert page.status_code == 200, page.text
    prov = page.text.split('id="provenance"')[1].split("</section>")[0]
    assert prov.count("<li>message ") == len(resp.json()["memories"][0]["sources"])
    assert "learned@v1" in prov and 'message 0: <span class="badge">insert' in prov
    assert "<b>comet</b>" not in page.text  # escaped
