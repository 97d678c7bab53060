"""A hard delete erases every copy of a memory's content (issue 12, item 3)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import create_engine, text

from memsvc.errors import Gone
from memsvc.schemas import MemoryCreate
from memsvc.sdk import AsyncMemoryClient
from tests.api.helpers import assert_error, make_cube
from tests.conftest import Service

pytestmark = pytest.mark.anyio

MARKER = "zebracorn7731"


def surviving_copies(database_url: str, marker: str) -> dict[str, int]:
    """Rows of every table of the schema whose text form holds ``marker``."""
    engine = create_engine(database_url)
    found: dict[str, int] = {}
    with engine.connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        for table in list(tables):
            n = conn.execute(
                text(f'SELECT count(*) FROM "{table}" t WHERE t::text ILIKE :m'),
                {"m": f"%{marker}%"},
            ).scalar_one()
            if n:
                found[table] = n
    engine.dispose()
    return found


async def test_replaying_the_create_of_an_erased_memory_is_gone_not_its_content(
    service: Service,
) -> None:
    # The reproduction: erase, then resend the original create with its key.
    cube = await make_cube(service)
    body = {"memories": [{"content": f"my secret is {MARKER}"}]}
    headers = {**service.auth(), "Idempotency-Key": "evt-erase-1"}
    created = await service.client.post(f"/v1/cubes/{cube}/memories", json=body, headers=headers)
    assert created.status_code == 201, created.text
    mid = created.json()["items"][0]["id"]
    erased = await service.client.delete(
        f"/v1/memories/{mid}", params={"hard": "true"}, headers=service.auth()
    )
    assert erased.status_code == 204
    replay = await service.client.post(f"/v1/cubes/{cube}/memories", json=body, headers=headers)
    err = assert_error(replay, 410, "memory_erased")
    assert MARKER not in replay.text
    assert err["detail"] == {"erased": [mid], "kept": []}


async def test_a_batch_replay_after_one_of_it_was_erased_names_what_is_kept(
    service: Service,
) -> None:
    cube = await make_cube(service)
    body = {"memories": [{"content": f"one {MARKER}"}, {"content": "two, harmless"}]}
    headers = {**service.auth(), "Idempotency-Key": "evt-erase-2"}
    created = await service.client.post(f"/v1/cubes/{cube}/memories", json=body, headers=headers)
    first, second = (m["id"] for m in created.json()["items"])
    await service.client.delete(
        f"/v1/memories/{first}", params={"hard": "true"}, headers=service.auth()
    )
    replay = await service.client.post(f"/v1/cubes/{cube}/memories", json=body, headers=headers)
    assert assert_error(replay, 410, "memory_erased")["detail"] == {
        "erased": [first],
        "kept": [second],
    }
    assert MARKER not in replay.text


async def test_hard_delete_leaves_no_copy_of_the_content_anywhere_in_the_database(
    service: Service, database_url: str
) -> None:
    cube = await make_cube(service)
    created = await service.client.post(
        f"/v1/cubes/{cube}/memories",
        json={
            "memories": [
                {
                    "content": f"Dana's locker code is {MARKER}",
                    "tags": [MARKER],
                    "metadata": {"note": MARKER},
                    "session_id": "s1",
                    "sources": [{"text": f"the code is {MARKER}", "speaker": "Dana"}],
                },
                # Indexed with the preceding turn of its session as context.
                {"content": "Dana goes to the gym on Mondays", "session_id": "s1"},
            ]
        },
        headers={**service.auth(), "Idempotency-Key": "evt-erase-3"},
    )
    assert created.status_code == 201, created.text
    mid, other = (m["id"] for m in created.json()["items"])
    patched = await service.client.patch(
        f"/v1/memories/{mid}",
        json={"content": f"Dana's code is now {MARKER}9", "expected_version": 1},
        headers=service.auth(),
    )
    assert patched.status_code == 200, patched.text
    link = await service.client.post(
        "/v1/links",
        json={
            "source_id": other,
            "target_id": mid,
            "relation": "related",
            "reason": f"both about {MARKER}",
        },
        headers=service.auth(),
    )
    assert link.status_code == 201, link.text
    # A failed job of the memory whose error quotes it (as raw SQL errors did).
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE job SET last_error = :e, result = CAST(:r AS jsonb) "
                "WHERE payload->>'memory_id' = :m"
            ),
            {"e": f"boom near '{MARKER}'", "r": f'{{"echo": "{MARKER}"}}', "m": mid},
        )
    engine.dispose()
    assert set(surviving_copies(database_url, MARKER)) >= {
        "memory",
        "memory_version",
        "source",
        "idempotency_record",
        "link",
        "job",
    }

    resp = await service.client.delete(
        f"/v1/memories/{mid}", params={"hard": "true"}, headers=service.auth()
    )
    assert resp.status_code == 204
    assert surviving_copies(database_url, MARKER) == {}
    # The other memory is whole, and no longer found by the erased words.
    kept = await service.client.get(f"/v1/memories/{other}", headers=service.auth())
    assert kept.json()["content"] == "Dana goes to the gym on Mondays"
    found = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={"query": f"{MARKER} locker", "preset": "fast"},
        headers=service.auth(),
    )
    assert found.status_code == 200, found.text
    assert MARKER not in found.text
    links = await service.client.get(f"/v1/memories/{other}/links", headers=service.auth())
    assert links.json()["items"] == []

    engine = create_engine(database_url)
    with engine.connect() as conn:
        audit = conn.execute(
            text("SELECT detail FROM audit_log WHERE action = 'memory.erase' AND target_id = :m"),
            {"m": mid},
        ).scalar_one()
    engine.dispose()
    assert audit == {
        "cube_id": cube,
        "versions": 2,
        "sources": 1,
        "idempotency_records": 1,
        "jobs": 1,
        "links": 1,
        "derived_versions": 0,
        "reindexed_memories": 1,
        "traces": 0,
        "summary_versions": 0,
        "decisions": 0,
    }


async def test_sdk_replay_of_an_erased_create_raises_gone(service: Service) -> None:
    transport = httpx.ASGITransport(app=service.app)  # type: ignore[arg-type]
    async with AsyncMemoryClient("http://memsvc", service.admin_key, transport=transport) as c:
        cube = await c.create_cube("erase-sdk")
        mem = await c.add(cube.id, f"the vault opens with {MARKER}", idempotency_key="sdk-1")
        await c.delete_memory(mem.id, hard=True)
        with pytest.raises(Gone) as caught:
            await c.add(cube.id, f"the vault opens with {MARKER}", idempotency_key="sdk-1")
        assert caught.value.code == "memory_erased"
        assert caught.value.status == 410
        # Every SDK create carries a key of its own: a fresh one writes anew.
        again = await c.add_many(cube.id, [MemoryCreate(content="a new fact")])
        assert [m.content for m in again] == ["a new fact"]


@pytest.mark.parametrize("session", ["s1", None], ids=["session", "same_day"])
async def test_erasure_reaches_the_context_of_later_turns_written_apart(
    service: Service, database_url: str, session: str | None
) -> None:
    """A later turn written in its own request took the erased one as context from the
    store (its thread: the session, else the day); a long turn is there only by its first
    words. Erasure cuts it out of both."""
    cube = await make_cube(service)
    long_secret = f"{MARKER} " + " ".join(f"word{i}" for i in range(300))
    ids = []
    for content in (f"Dana's locker code is {MARKER}", long_secret, "Dana goes to the gym"):
        item = {
            "content": content,
            **({"session_id": session} if session else {}),
            "sources": [{"speaker": "Dana", "occurred_at": "2023-05-08T10:00:00Z"}],
        }
        resp = await service.client.post(
            f"/v1/cubes/{cube}/memories", json={"memories": [item]}, headers=service.auth()
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["items"][0]["id"])
    assert surviving_copies(database_url, MARKER).get("memory") == 3  # itself + contexts
    for mid in ids[:2]:
        resp = await service.client.delete(
            f"/v1/memories/{mid}", params={"hard": "true"}, headers=service.auth()
        )
        assert resp.status_code == 204
    assert "memory" not in surviving_copies(database_url, MARKER)
