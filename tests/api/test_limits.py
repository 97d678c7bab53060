"""Per-key rate limits (issue 12, item 9): 429 with Retry-After in the error shape."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from memsvc.api.limits import RateLimiter
from memsvc.config import LimitSettings, Settings
from tests.api.helpers import assert_error, new_tenant_key
from tests.conftest import Service

pytestmark = pytest.mark.anyio


def test_token_bucket_refills_at_its_rate() -> None:
    lim = RateLimiter(rate_per_s=10, burst=3)
    k = uuid.uuid4()
    assert [lim.take(k, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take(k, now=0.0) == pytest.approx(0.1)
    assert lim.take(k, now=0.1) == 0.0  # one token back after 1/rate
    assert RateLimiter(rate_per_s=0, burst=0).take(k) == 0.0  # off


@pytest.fixture()
async def limited(settings: Settings, runtime) -> AsyncIterator[Service]:  # type: ignore[no-untyped-def]
    limited = settings.model_copy(update={"limits": LimitSettings(rate_per_s=1, rate_burst=5)})
    from memsvc.api.app import create_app

    app = create_app(limited, runtime=runtime)
    async with app.router.lifespan_context(app):
        key = (limited.data_dir / "admin.key").read_text().strip()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://memsvc") as client:
            yield Service(app, client, key)


async def test_a_key_over_its_rate_gets_429_with_retry_after(limited: Service) -> None:
    c = limited.client
    other = await new_tenant_key(limited, "other")  # two of the admin key's five
    codes = [(await c.get("/v1/cubes", headers=limited.auth())).status_code for _ in range(3)]
    assert codes == [200] * 3
    r = await c.get("/v1/cubes", headers=limited.auth())
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    # Another key has its own bucket.
    assert (await c.get("/v1/cubes", headers=limited.auth(other))).status_code == 200


async def test_a_half_sent_body_is_answered_408_not_held(settings: Settings, runtime) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from memsvc.api.app import create_app

    quick = settings.model_copy(update={"limits": LimitSettings(rate_per_s=0, body_timeout_s=0.5)})
    app = create_app(quick, runtime=runtime)
    async with app.router.lifespan_context(app):
        key = (quick.data_dir / "admin.key").read_text().strip()
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            if not sent:
                sent.append({})
                return {"type": "http.request", "body": b'{"name": ', "more_body": True}
            await asyncio.sleep(3600)  # the rest never comes
            raise AssertionError

        out: list[dict[str, object]] = []

        async def send(message: dict[str, object]) -> None:
            out.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "path": "/v1/cubes",
            "raw_path": b"/v1/cubes",
            "query_string": b"",
            "root_path": "",
            "scheme": "http",
            "server": ("memsvc", 80),
            "client": ("127.0.0.1", 1),
            "headers": [
                (b"authorization", f"Bearer {key}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", b"100"),
            ],
            "state": {},
        }
        await asyncio.wait_for(app(scope, receive, send), timeout=10)  # type: ignore[arg-type]
        assert out[0]["status"] == 408
