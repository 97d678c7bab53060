"""The SDK's first update after a create is not refused because enrichment ran in between."""

from __future__ import annotations

import httpx
import pytest

from memsvc.errors import Conflict
from memsvc.sdk import AsyncMemoryClient
from tests.conftest import Service
from tests.graph.helpers import worker_for

pytestmark = pytest.mark.anyio


async def test_update_with_the_created_version_after_enrichment(service: Service) -> None:
    transport = httpx.ASGITransport(app=service.app)  # type: ignore[arg-type]
    async with AsyncMemoryClient("http://memsvc", service.admin_key, transport=transport) as c:
        cube = await c.create_cube("agent")
        mem = await c.add(cube.id, "Jordan's sister lives in Denver", tags=["family"])
        await worker_for(service).run_until_idle()  # enrichment writes version 2

        updated = await c.update_memory(
            mem.id, content="Jordan's sister moved to Austin", expected_version=mem.version
        )
        assert (updated.version, updated.content) == (3, "Jordan's sister moved to Austin")
        assert updated.keywords and updated.context and "jordan" in updated.tags
        history = await c.list_versions(mem.id)
        assert [(v.change_kind, v.rebased_over) for v in history.items] == [
            ("create", []),
            ("enrich", []),
            ("update", [2]),
        ]
        prov = await c.get_provenance(mem.id)
        assert prov.versions[-1].rebased_over == [2]

        # Replacing tags that enrichment changed since version 1 is still refused.
        with pytest.raises(Conflict) as refused:
            await c.update_memory(mem.id, tags=["family", "texas"], expected_version=mem.version)
        assert refused.value.code == "version_conflict"
        assert refused.value.detail == {
            "expected_version": 1,
            "current_version": 3,
            "conflicting_version": 2,
            "change_kind": "enrich",
            "fields": ["tags"],
        }
