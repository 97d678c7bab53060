"""The admin view's edit form follows the API's rule: rebased over enrichment, else 409."""

from __future__ import annotations

import pytest

from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import versions, worker_for
from tests.web.helpers import sign_in

pytestmark = pytest.mark.anyio


async def test_a_form_opened_before_enrichment_saves_over_it(service: Service) -> None:
    cube = await make_cube(service)
    [mem] = await add(service, cube, {"content": "Caroline likes green tea", "tags": ["drinks"]})
    csrf = await sign_in(service.client, service.admin_key)
    # The operator opens the form at version 1; enrichment then writes version 2.
    form_page = await service.client.get(f"/admin/memories/{mem['id']}")
    assert 'name="expected_version" value="1"' in form_page.text
    await worker_for(service).run_until_idle()
    enriched = (
        await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())
    ).json()
    assert enriched["tags"] == ["drinks", "caroline"]

    # The form posts back what it showed (tags as at version 1) plus the operator's change.
    fields = {"csrf": csrf, "kind": "fact", "layer": "semantic", "importance": "0.5"}
    v1 = {"expected_version": "1"}
    resp = await service.client.post(
        f"/admin/memories/{mem['id']}/edit",
        data={**fields, "content": "Caroline likes jasmine tea", "tags": "drinks", **v1},
    )
    assert (resp.status_code, resp.headers["location"]) == (
        303,
        f"/admin/memories/{mem['id']}?msg=saved",
    )
    now = (await service.client.get(f"/v1/memories/{mem['id']}", headers=service.auth())).json()
    assert (now["version"], now["content"], now["tags"], now["keywords"]) == (
        3,
        "Caroline likes jasmine tea",
        ["drinks", "caroline"],
        enriched["keywords"],
    )
    assert (await versions(service, mem["id"]))[-1]["rebased_over"] == [2]
    shown = await service.client.get(f"/admin/memories/{mem['id']}")
    assert '<div class="small rebased">made against v1, applied over v2</div>' in shown.text

    # Changing the tags enrichment changed since the form was opened is a conflict.
    clash = await service.client.post(
        f"/admin/memories/{mem['id']}/edit",
        data={**fields, "content": "Caroline likes green tea", "tags": "drinks, tea", **v1},
    )
    assert clash.status_code == 409
    assert "version_conflict" in clash.text
    assert "memory is at version 3, not 1: version 2 (enrich) changed tags" in clash.text
