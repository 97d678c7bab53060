"""Evolution (LLM mode) and a concurrent edit: rebased when disjoint, 409 when it overlaps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memsvc.llm import LiteLLM
from memsvc.llm.fake import Registered, registered
from tests.api.helpers import add, assert_error, make_cube
from tests.conftest import Service
from tests.graph.helpers import versions, worker_for
from tests.graph.test_llm_mode import Script, llm_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def scripted() -> Iterator[tuple[Script, Registered]]:
    s = Script()
    with registered(s) as reg:
        yield s, reg


async def test_edit_against_a_neighbour_evolved_since(
    service: Service, scripted: tuple[Script, Registered]
) -> None:
    s, reg = scripted
    settings = llm_settings(service, reg.model)
    worker = worker_for(service, llm=LiteLLM(settings.llm), settings=settings)
    cube = await make_cube(service)
    [old] = await add(
        service,
        cube,
        {"content": "Caroline lives in Berlin.", "valid_from": "2022-01-01T00:00:00Z"},
    )
    await worker.run_until_idle()
    read = (await service.client.get(f"/v1/memories/{old['id']}", headers=service.auth())).json()
    assert read["version"] == 2  # what the agent read, before the evolution below

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
        {"candidate": 1, "context": "Where Caroline lived until 2023.", "reason": "now past"}
    ]
    await add(
        service,
        cube,
        {"content": "Caroline moved to Lisbon.", "valid_from": "2023-06-01T00:00:00Z"},
    )
    await worker.run_until_idle()
    vers = await versions(service, old["id"])
    assert [v["change_kind"] for v in vers] == ["create", "enrich", "evolve"]
    evolved = vers[2]
    assert evolved["valid_to"] == "2023-06-01T00:00:00Z"

    # The evolution closed valid_to (and rewrote context): an edit of valid_to made against
    # version 2 would silently undo it.
    clash = await service.client.patch(
        f"/v1/memories/{old['id']}",
        json={"expected_version": 2, "valid_to": "2024-01-01T00:00:00Z"},
        headers=service.auth(),
    )
    err = assert_error(clash, 409, "version_conflict")
    assert err["detail"] == {
        "expected_version": 2,
        "current_version": 3,
        "conflicting_version": 3,
        "change_kind": "evolve",
        "fields": ["valid_to"],
    }

    # An edit of fields the evolution left alone is rebased over it.
    ok = await service.client.patch(
        f"/v1/memories/{old['id']}",
        json={"expected_version": 2, "content": "Caroline lived in Berlin.", "importance": 0.2},
        headers=service.auth(),
    )
    assert ok.status_code == 200, ok.text
    got = ok.json()
    assert (got["version"], got["content"], got["importance"]) == (
        4,
        "Caroline lived in Berlin.",
        0.2,
    )
    assert (got["context"], got["valid_to"]) == (
        "Where Caroline lived until 2023.",
        "2023-06-01T00:00:00Z",
    )
    last = (await versions(service, old["id"]))[-1]
    assert (last["change_kind"], last["rebased_over"]) == ("update", [3])
