"""Process state has one owner: each Database handle its own caches."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from cachetools import TLRUCache

from memsvc.store import caches as caches_module
from memsvc.store.caches import Caches, caches_of
from memsvc.store.db import Database

pytestmark = pytest.mark.anyio


async def test_each_database_handle_owns_its_caches(database_url: str) -> None:
    one, two = Database.connect(database_url), Database.connect(database_url)
    try:
        async with one.transaction() as s1, two.transaction() as s2:
            assert caches_of(s1) is one.caches
            assert caches_of(s2) is two.caches
            cube = uuid.uuid4()
            caches_of(s1).touch_cube(cube)
            caches_of(s1).ann_indexed[cube] = True
            assert one.caches.generation(cube) == 1
            assert two.caches.generation(cube) == 0
            assert cube not in two.caches.ann_indexed
    finally:
        await one.close()
        await two.close()


async def test_closing_a_handle_waits_for_its_own_tasks_only(database_url: str) -> None:
    one, two = Database.connect(database_url), Database.connect(database_url)
    release = asyncio.Event()
    done: list[str] = []

    async def mine() -> None:
        await asyncio.sleep(0.05)
        done.append("mine")

    async def theirs() -> None:
        await release.wait()
        done.append("theirs")

    one.caches.spawn(asyncio.create_task(mine()))
    two.caches.spawn(asyncio.create_task(theirs()))
    await asyncio.wait_for(one.close(), timeout=5)  # would hang if it waited for two's task
    assert done == ["mine"]
    release.set()
    await two.close()
    assert done == ["mine", "theirs"]


def test_promotion_state_a_no_expires_a_yes_stays() -> None:
    now = [0.0]
    caches = Caches(ann_indexed=TLRUCache(10, caches_module._indexed_ttu, timer=lambda: now[0]))
    cube_yes, cube_no = uuid.uuid4(), uuid.uuid4()
    caches.ann_indexed[cube_yes] = True
    caches.ann_indexed[cube_no] = False
    now[0] += 60
    assert caches.ann_indexed.get(cube_yes) is True
    assert caches.ann_indexed.get(cube_no) is None
    assert Caches().lexicons.maxsize == caches_module.LEXICONS_MAX
