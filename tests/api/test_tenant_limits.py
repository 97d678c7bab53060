"""Per-tenant limits and the daily write quota (issue 12, item 9): HTTP, SDK and CLI."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from memsvc.api.limits import quota_exceeded
from memsvc.config import LimitSettings, Settings
from memsvc.errors import ValidationFailed
from memsvc.schemas import AskBudget
from tests.api.helpers import add, assert_error, make_cube
from tests.conftest import LiveServer, Service

pytestmark = pytest.mark.anyio


async def _tenant(svc: Service, name: str, role: str = "admin") -> tuple[str, str]:
    t = await svc.client.post("/v1/tenants", json={"name": name}, headers=svc.auth())
    assert t.status_code == 201, t.text
    k = await svc.client.post(
        "/v1/keys", json={"tenant_id": t.json()["id"], "role": role}, headers=svc.auth()
    )
    assert k.status_code == 201, k.text
    return str(t.json()["id"]), str(k.json()["key"])


@pytest.fixture()
async def quota_service(settings: Settings, runtime) -> AsyncIterator[Service]:  # type: ignore[no-untyped-def]
    quick = settings.model_copy(update={"limits": LimitSettings(daily_write_quota=3)})
    from memsvc.api.app import create_app

    app = create_app(quick, runtime=runtime)
    async with app.router.lifespan_context(app):
        key = (quick.data_dir / "admin.key").read_text().strip()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://memsvc") as client:
            yield Service(app, client, key)


async def test_operator_sets_and_reads_limits_tenant_admin_reads_its_own(
    service: Service,
) -> None:
    c = service.client
    a_id, a_admin = await _tenant(service, "a")
    b_id, b_admin = await _tenant(service, "b")
    _, a_member = await _tenant(service, "a2", role="member")
    got = await c.get(f"/v1/tenants/{a_id}/limits", headers=service.auth())
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["rate_per_s"] is None and body["daily_write_quota"] is None
    defaults = service.app.state.memsvc.settings.limits  # type: ignore[attr-defined]
    assert body["effective"]["rate_per_s"] == defaults.rate_per_s
    put = await c.put(
        f"/v1/tenants/{a_id}/limits",
        json={"rate_per_s": 2.5, "rate_burst": 7, "daily_write_quota": 100},
        headers=service.auth(),
    )
    assert put.status_code == 200, put.text
    assert put.json()["effective"] == {
        "rate_per_s": 2.5,
        "rate_burst": 7,
        "daily_write_quota": 100,
        "ask_max_cycles": defaults.ask_max_cycles,
        "ask_max_llm_calls": defaults.ask_max_llm_calls,
        "ask_max_tokens": defaults.ask_max_tokens,
        "ask_deadline_ms": defaults.ask_deadline_ms,
    }
    own = await c.get(f"/v1/tenants/{a_id}/limits", headers=service.auth(a_admin))
    assert own.status_code == 200 and own.json()["rate_burst"] == 7
    # Another tenant's limits: 403 whether or not it exists (nothing learned).
    for other in (b_id, str(uuid.uuid4())):
        assert_error(await c.get(f"/v1/tenants/{other}/limits", headers=service.auth(a_admin)), 403)
    # Only the operator changes limits; members do not read them.
    for key in (a_admin, b_admin):
        r = await c.put(f"/v1/tenants/{a_id}/limits", json={}, headers=service.auth(key))
        assert_error(r, 403)
    assert_error(await c.get(f"/v1/tenants/{a_id}/limits", headers=service.auth(a_member)), 403)
    # The operator naming no tenant: 404.
    gone = str(uuid.uuid4())
    assert_error(
        await c.get(f"/v1/tenants/{gone}/limits", headers=service.auth()), 404, "tenant_not_found"
    )
    assert_error(
        await c.put(f"/v1/tenants/{gone}/limits", json={}, headers=service.auth()),
        404,
        "tenant_not_found",
    )
    # An empty body puts everything back to the server's defaults.
    reset = await c.put(f"/v1/tenants/{a_id}/limits", json={}, headers=service.auth())
    assert reset.json()["rate_burst"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"rate_per_s": -1},
        {"rate_burst": -5},
        {"daily_write_quota": -1},
        {"rate_burst": 10**30},
        {"daily_write_quota": 2**63},
        {"rate_per_s": 1e300},
        {"rate_burst": "5"},
        {"rate_burst": "5\x00"},
        {"daily_write_quota": 1.5},
        {"daily_write_quota": True},
        {"rate_per_s": "NaN"},
        {"other": 1},
        [],
    ],
)
async def test_hostile_limits_are_422(service: Service, body: object) -> None:
    tid = (await service.client.get("/v1/tenants", headers=service.auth())).json()["items"][0]["id"]
    r = await service.client.put(f"/v1/tenants/{tid}/limits", json=body, headers=service.auth())
    assert_error(r, 422)


async def test_hostile_tenant_ids_are_422(service: Service) -> None:
    for bad in ("nope", "%00", "1" * 5000):
        r = await service.client.get(f"/v1/tenants/{bad}/limits", headers=service.auth())
        assert r.status_code == 422, (bad, r.text)


async def test_a_tenant_rate_override_applies_to_its_keys(service: Service) -> None:
    c = service.client
    a_id, a_admin = await _tenant(service, "slow")
    put = await c.put(
        f"/v1/tenants/{a_id}/limits",
        json={"rate_per_s": 0.01, "rate_burst": 2},
        headers=service.auth(),
    )
    assert put.status_code == 200
    codes = [
        (await c.get("/v1/cubes", headers=service.auth(a_admin))).status_code for _ in range(3)
    ]
    assert codes[:2] == [200, 200]
    assert_error(await c.get("/v1/cubes", headers=service.auth(a_admin)), 429, "rate_limited")
    # The operator's own tenant keeps the server's defaults.
    assert (await c.get("/v1/cubes", headers=service.auth())).status_code == 200


async def test_daily_write_quota_is_429_until_midnight_utc(quota_service: Service) -> None:
    svc = quota_service
    c = svc.client
    cube = await make_cube(svc)
    retry = {"Idempotency-Key": "k-1"}
    await add(svc, cube, {"content": "one"}, {"content": "two"}, headers=retry)
    # A retry replays the first answer and counts nothing.
    again = await add(svc, cube, {"content": "one"}, {"content": "two"}, headers=retry)
    assert len(again) == 2
    # A batch that would cross the quota is refused whole, before any work.
    over = await c.post(
        f"/v1/cubes/{cube}/memories",
        json={"memories": [{"content": "x"}, {"content": "y"}]},
        headers=svc.auth(),
    )
    err = assert_error(over, 429, "quota_exceeded")
    assert 1 <= int(over.headers["Retry-After"]) <= 86400
    assert err["detail"]["daily_write_quota"] == 3
    listed = await c.get(f"/v1/cubes/{cube}/memories", headers=svc.auth())
    assert len(listed.json()["items"]) == 2
    # A failed write gives its count back.
    bad = await c.post(
        f"/v1/cubes/{cube}/memories", json={"memories": [{"content": ""}]}, headers=svc.auth()
    )
    assert bad.status_code == 422
    await add(svc, cube, {"content": "three"})
    assert_error(
        await c.post(
            f"/v1/cubes/{cube}/memories",
            json={"memories": [{"content": "four"}]},
            headers=svc.auth(),
        ),
        429,
        "quota_exceeded",
    )
    tenants = (await c.get("/v1/tenants", headers=svc.auth())).json()["items"]
    tid = next(t["id"] for t in tenants if t["name"] == "default")
    limits = (await c.get(f"/v1/tenants/{tid}/limits", headers=svc.auth())).json()
    assert limits["writes_today"] == 3 and limits["effective"]["daily_write_quota"] == 3
    # The operator lifts the tenant's quota (0: unlimited): writes go through at once.
    put = await c.put(
        f"/v1/tenants/{tid}/limits", json={"daily_write_quota": 0}, headers=svc.auth()
    )
    assert put.status_code == 200
    await add(svc, cube, {"content": "four"})


def test_quota_retry_after_counts_to_midnight_utc() -> None:
    exc = quota_exceeded(10, 1, now=datetime(2026, 12, 1, 23, 59, 30, tzinfo=UTC))
    assert exc.code == "quota_exceeded" and exc.detail["retry_after_s"] == 30


def test_cli_limits_show_and_set(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from memsvc.cli import main

    assert settings.database_url is not None
    monkeypatch.setenv("MEMSVC_DATABASE_URL", settings.database_url.get_secret_value())
    data = ["--data-dir", str(settings.data_dir)]
    assert main(["keys", "create", "--tenant", "acme", *data]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "limits",
                "set",
                "--tenant",
                "acme",
                "--rate-per-s",
                "3",
                "--daily-write-quota",
                "50",
                *data,
            ]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert (shown["rate_per_s"], shown["rate_burst"], shown["daily_write_quota"]) == (3.0, None, 50)
    assert main(["limits", "set", "--tenant", "acme", "--rate-per-s", "default", *data]) == 0
    capsys.readouterr()
    assert main(["limits", "show", "--tenant", "acme", *data]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["rate_per_s"] is None and shown["daily_write_quota"] == 50
    for bad in (
        ["--rate-burst", "-1"],
        ["--daily-write-quota", "1e400"],
        ["--rate-burst", "x\x00"],
    ):
        assert main(["limits", "set", "--tenant", "acme", *bad, *data]) == 2
        assert "invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no tenant"):
        main(["limits", "show", "--tenant", "nobody", *data])


async def test_async_sdk_get_and_set_limits(service: Service) -> None:
    from memsvc.sdk import AsyncMemoryClient, Forbidden, RateLimited

    a_id, a_admin = await _tenant(service, "sdk-a")
    transport = httpx.ASGITransport(app=service.app)  # type: ignore[arg-type]
    async with AsyncMemoryClient("http://memsvc", service.admin_key, transport=transport) as op:
        got = await op.set_limits(a_id, rate_burst=4, daily_write_quota=1)
        assert (got.rate_per_s, got.rate_burst, got.daily_write_quota) == (None, 4, 1)
        assert (await op.get_limits(a_id)).effective.daily_write_quota == 1
    async with AsyncMemoryClient("http://memsvc", a_admin, transport=transport) as a:
        assert (await a.get_limits(a_id)).rate_burst == 4
        with pytest.raises(Forbidden):
            await a.set_limits(a_id, daily_write_quota=0)
        cube = await a.create_cube("c")
        await a.add(cube.id, "first")
        with pytest.raises(RateLimited) as over:
            await a.add(cube.id, "second")
        assert over.value.code == "quota_exceeded"


def test_sync_sdk_get_and_set_limits(live_server: LiveServer) -> None:
    from memsvc.sdk import MemoryClient

    with MemoryClient(live_server.url, live_server.admin_key) as op:
        tid = op.list_tenants().items[0].id
        got = op.set_limits(tid, rate_per_s=50.5)
        assert got.rate_per_s == 50.5 and got.effective.rate_per_s == 50.5
        assert op.get_limits(tid).effective.rate_burst == got.effective.rate_burst
        assert op.set_limits(tid).rate_per_s is None
        capped = op.set_limits(tid, ask_max_cycles=1, ask_deadline_ms=2000)
        assert (capped.ask_max_cycles, capped.effective.ask_deadline_ms) == (1, 2000)
        cube = op.create_cube("capped")
        with pytest.raises(ValidationFailed):
            op.ask(cube.id, "q", budget=AskBudget(max_cycles=2))
        assert op.ask(cube.id, "q", budget=AskBudget(max_cycles=1)).evidence == []
        assert op.set_limits(tid).ask_max_cycles is None
