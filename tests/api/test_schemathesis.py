"""Schemathesis over every operation of ``/openapi.json`` (bounded; bench/fuzz_api.py runs more):
no 5xx, and every response conforms to the documented statuses, content types and schemas."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer

pytest.importorskip("schemathesis")


@pytest.mark.timeout(600)
def test_every_operation_holds_under_generated_input(live_server: LiveServer) -> None:
    from tests.api.fuzz import fuzz

    report = fuzz(live_server.url, live_server.admin_key, max_examples=6)
    print(
        f"schemathesis: {report.operations} operations, {report.requests} requests, "
        f"statuses {dict(sorted(report.statuses.items()))}"
    )
    assert report.operations >= 20
    assert report.server_errors == []
    assert report.failures == []
