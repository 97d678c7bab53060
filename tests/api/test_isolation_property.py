"""Property: no sequence of calls with tenant B's keys reads, changes or learns the existence
of anything of tenant A — over the API, the admin view, jobs, links and search.

Every call aimed at one of A's ids is made twice, once with A's id and once with an id that
exists nowhere; the two answers must be the same (status, error code and message), so B
cannot tell A's ids from random ones. B's own lists and searches must not show A's ids or
words, and A's data must read the same before and after.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer

SECRET = "wombat8842"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ERROR_JSON = re.compile(r'<script type="application/json" id="error">(.*?)</script>', re.S)


@dataclass(frozen=True)
class Ids:
    """The ids an attack aims at: A's real ones, or ones that exist nowhere."""

    memory: str
    memory2: str
    cube: str
    job: int
    link: str
    key: str
    tenant: str


def _fake_ids(n: int) -> Ids:
    return Ids(
        *(str(uuid.uuid4()) for _ in range(3)),
        2_000_000_000 - n,
        *(str(uuid.uuid4()) for _ in range(3)),
    )


@dataclass
class Caller:
    """One of B's identities: an API client with a key, or a signed-in admin view session."""

    http: httpx.Client
    key: str
    csrf: str = ""

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)


Action = Callable[[Caller, Ids, str], httpx.Response]

# Calls aimed at A's ids: the answer must not depend on whether the id is A's.
AIMED: dict[str, Action] = {
    "get memory": lambda c, i, _: c.api("GET", f"/v1/memories/{i.memory}"),
    "versions": lambda c, i, _: c.api("GET", f"/v1/memories/{i.memory}/versions"),
    "version 1": lambda c, i, _: c.api("GET", f"/v1/memories/{i.memory}/versions/1"),
    "provenance": lambda c, i, _: c.api("GET", f"/v1/memories/{i.memory}/provenance"),
    "links of": lambda c, i, _: c.api("GET", f"/v1/memories/{i.memory}/links"),
    "patch memory": lambda c, i, t: c.api(
        "PATCH", f"/v1/memories/{i.memory}", json={"content": t, "expected_version": 1}
    ),
    "soft delete": lambda c, i, _: c.api("DELETE", f"/v1/memories/{i.memory}"),
    "hard delete": lambda c, i, _: c.api("DELETE", f"/v1/memories/{i.memory}?hard=true"),
    "restore": lambda c, i, _: c.api("POST", f"/v1/memories/{i.memory}/restore"),
    "get cube": lambda c, i, _: c.api("GET", f"/v1/cubes/{i.cube}"),
    "patch cube": lambda c, i, t: c.api("PATCH", f"/v1/cubes/{i.cube}", json={"description": t}),
    "delete cube": lambda c, i, _: c.api("DELETE", f"/v1/cubes/{i.cube}"),
    "list cube": lambda c, i, _: c.api("GET", f"/v1/cubes/{i.cube}/memories"),
    "write into cube": lambda c, i, t: c.api(
        "POST", f"/v1/cubes/{i.cube}/memories", json={"memories": [{"content": t}]}
    ),
    "search cube": lambda c, i, t: c.api("POST", f"/v1/cubes/{i.cube}/search", json={"query": t}),
    "graph": lambda c, i, _: c.api("GET", f"/v1/cubes/{i.cube}/graph"),
    "export cube": lambda c, i, _: c.api("GET", f"/v1/cubes/{i.cube}/export"),
    "import into cube": lambda c, i, t: c.api(
        "POST",
        f"/v1/cubes/{i.cube}/import",
        content=json.dumps({"type": "end", "counts": {"note": len(t)}}).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    ),
    "path": lambda c, i, _: c.api(
        "GET", f"/v1/cubes/{i.cube}/graph/path", params={"source": i.memory, "target": i.memory2}
    ),
    "get job": lambda c, i, _: c.api("GET", f"/v1/jobs/{i.job}"),
    "retry job": lambda c, i, _: c.api("POST", f"/v1/jobs/{i.job}/retry"),
    "link A to A": lambda c, i, t: c.api(
        "POST",
        "/v1/links",
        json={"source_id": i.memory, "target_id": i.memory2, "relation": "related", "reason": t},
    ),
    "delete link": lambda c, i, _: c.api("DELETE", f"/v1/links/{i.link}"),
    "revoke key": lambda c, i, _: c.api("DELETE", f"/v1/keys/{i.key}"),
    "key in A": lambda c, i, _: c.api("POST", "/v1/keys", json={"tenant_id": i.tenant}),
    "act as A": lambda c, i, _: c.api("GET", "/v1/cubes", headers={"X-Tenant-Id": i.tenant}),
    "limits of A": lambda c, i, _: c.api("GET", f"/v1/tenants/{i.tenant}/limits"),
    "set limits of A": lambda c, i, _: c.api(
        "PUT", f"/v1/tenants/{i.tenant}/limits", json={"rate_per_s": 0.001, "rate_burst": 1}
    ),
    "admin memory": lambda c, i, _: c.http.get(f"/admin/memories/{i.memory}"),
    "admin cube": lambda c, i, _: c.http.get(f"/admin/cubes/{i.cube}"),
    "admin graph": lambda c, i, _: c.http.get(f"/admin/cubes/{i.cube}/graph"),
    "admin graph data": lambda c, i, _: c.http.get(f"/admin/api/cubes/{i.cube}/graph"),
    "admin edit": lambda c, i, t: c.http.post(
        f"/admin/memories/{i.memory}/edit",
        data={"csrf": c.csrf, "content": t, "expected_version": "1"},
    ),
    "admin delete": lambda c, i, _: c.http.post(
        f"/admin/memories/{i.memory}/delete", data={"csrf": c.csrf}
    ),
    "admin retry job": lambda c, i, _: c.http.post(
        f"/admin/jobs/{i.job}/retry", data={"csrf": c.csrf}
    ),
}

# B's own views: what they show must hold nothing of A.
OWN: dict[str, Callable[[Caller, str, str], httpx.Response]] = {
    "list cubes": lambda c, _, __: c.api("GET", "/v1/cubes"),
    "list jobs": lambda c, _, __: c.api("GET", "/v1/jobs", params={"status": "failed"}),
    "list all jobs": lambda c, _, __: c.api("GET", "/v1/jobs", params={"kind": "enrich"}),
    "list keys": lambda c, _, __: c.api("GET", "/v1/keys"),
    "list tenants": lambda c, _, __: c.api("GET", "/v1/tenants"),
    "search own": lambda c, cube, t: c.api(
        "POST", f"/v1/cubes/{cube}/search", json={"query": f"{SECRET} {t}", "top_k": 50}
    ),
    "list own": lambda c, cube, _: c.api("GET", f"/v1/cubes/{cube}/memories"),
    "admin home": lambda c, _, __: c.http.get("/admin/"),
    "admin jobs": lambda c, _, __: c.http.get("/admin/jobs"),
    "admin tenants": lambda c, _, __: c.http.get("/admin/tenants"),
}


def _answer(resp: httpx.Response) -> tuple[int, str, str]:
    """What a caller learns from an answer, ids aside: status, error code and message."""
    assert resp.status_code < 500, resp.text
    if resp.headers.get("content-type", "").startswith("application/json"):
        body = resp.json()
        if isinstance(body, dict) and "error" in body:
            return resp.status_code, body["error"]["code"], body["error"]["message"]
    match = ERROR_JSON.search(resp.text)
    if match:
        err = json.loads(match.group(1))["error"]
        return resp.status_code, err["code"], err["message"]
    return resp.status_code, "", ""


def _seed(url: str, operator: str) -> tuple[Ids, dict[str, str], str, Callable[[], Any]]:
    """Tenants A and B; A's data; B's keys and cube. Returns A's ids, B's keys, B's cube and
    a function reading A's state as A sees it."""
    op = {"Authorization": f"Bearer {operator}"}
    with httpx.Client(base_url=url, timeout=60) as h:
        a = h.post("/v1/tenants", json={"name": "tenant-a"}, headers=op).json()["id"]
        b = h.post("/v1/tenants", json={"name": "tenant-b"}, headers=op).json()["id"]
        made = h.post("/v1/keys", json={"tenant_id": a, "role": "admin"}, headers=op).json()
        a_auth = {"Authorization": f"Bearer {made['key']}"}
        keys = {
            role: h.post("/v1/keys", json={"tenant_id": b, "role": role}, headers=op).json()["key"]
            for role in ("member", "admin")
        }
        cube = h.post("/v1/cubes", json={"name": "a-cube"}, headers=a_auth).json()["id"]
        mems = h.post(
            f"/v1/cubes/{cube}/memories",
            json={
                "memories": [
                    {"content": f"A's {SECRET} one", "sources": [{"text": SECRET}]},
                    {"content": f"A's {SECRET} two", "tags": [SECRET]},
                ]
            },
            headers=a_auth,
        ).json()["items"]
        h.patch(
            f"/v1/memories/{mems[0]['id']}",
            json={"content": f"A's {SECRET} one, edited", "expected_version": 1},
            headers=a_auth,
        )
        link = h.post(
            "/v1/links",
            json={
                "source_id": mems[0]["id"],
                "target_id": mems[1]["id"],
                "relation": "related",
                "reason": SECRET,
            },
            headers=a_auth,
        ).json()["id"]
        jobs = h.get("/v1/jobs", params={"kind": "enrich"}, headers=a_auth).json()["items"]
        b_auth = {"Authorization": f"Bearer {keys['member']}"}
        b_cube = h.post("/v1/cubes", json={"name": "b-cube"}, headers=b_auth).json()["id"]
        h.post(
            f"/v1/cubes/{b_cube}/memories",
            json={"memories": [{"content": "B's own note about wombats"}]},
            headers=b_auth,
        )
    ids = Ids(mems[0]["id"], mems[1]["id"], cube, jobs[0]["id"], link, made["id"], a)

    def a_state() -> Any:
        with httpx.Client(base_url=url, timeout=60, headers=a_auth) as h:
            got = [
                h.get(path).json()
                for m in (ids.memory, ids.memory2)
                for path in (
                    f"/v1/memories/{m}",
                    f"/v1/memories/{m}/versions",
                    f"/v1/memories/{m}/links",
                )
            ]
            got.append(h.get(f"/v1/cubes/{cube}").json())
            got.append([k["id"] for k in h.get("/v1/keys").json()["items"] if not k["revoked_at"]])
            job = h.get(f"/v1/jobs/{ids.job}").json()
            got.append((job["id"], job["attempts"], job["max_attempts"]))
            return got

    return ids, keys, b_cube, a_state


def _sign_in(http: httpx.Client, key: str) -> str:
    form = http.get("/admin/login")
    token = CSRF.search(form.text)
    assert token
    resp = http.post("/admin/login", data={"csrf": token.group(1), "key": key, "next": "/admin/"})
    assert resp.status_code == 303, resp.text
    home = http.get("/admin/")
    found = CSRF.search(home.text)
    assert found
    return found.group(1)


def test_no_call_sequence_with_b_keys_reaches_tenant_a(live_server: LiveServer) -> None:
    ids, keys, b_cube, a_state = _seed(live_server.url, live_server.admin_key)
    before = a_state()
    a_ids = [ids.memory, ids.memory2, ids.cube, ids.link, ids.key, ids.tenant]
    clients = [httpx.Client(base_url=live_server.url, timeout=60) for _ in keys]
    callers = [Caller(h, k) for h, k in zip(clients, keys.values(), strict=True)]
    for c in callers:
        c.csrf = _sign_in(c.http, c.key)
    fakes = iter(range(10**6))
    words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)
    step = st.tuples(
        st.sampled_from(sorted(AIMED) + [f"own:{n}" for n in sorted(OWN)]),
        st.integers(0, len(callers) - 1),
        words,
    )

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(step, min_size=1, max_size=6))
    def attack(steps: list[tuple[str, int, str]]) -> None:
        for name, who, text in steps:
            caller = callers[who]
            content = f"B wrote {text}"
            if name.startswith("own:"):
                resp = OWN[name[4:]](caller, b_cube, text)
                assert resp.status_code < 500, resp.text
                assert SECRET not in resp.text, name
                assert not [i for i in a_ids if i in resp.text], name
                continue
            real = _answer(AIMED[name](caller, ids, content))
            fake = _answer(AIMED[name](caller, _fake_ids(next(fakes)), content))
            assert real == fake, (name, real, fake)
            assert real[0] in {400, 403, 404, 409, 422}, (name, real)

    try:
        attack()
    finally:
        for h in clients:
            h.close()
    assert a_state() == before
