"""Schemathesis over ``/openapi.json``: every operation, with auth, against a served app.

Shared by tests/api/test_schemathesis.py (bounded) and bench/fuzz_api.py (longer runs).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

# The import body is JSON lines, documented as a string: sent as text.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class FuzzReport:
    """What a run sent and got back."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    operations: int = 0


def fuzz(
    base_url: str,
    key: str,
    *,
    max_examples: int = 10,
    seed: int | None = 12,
    stop_on_failure: bool = False,
) -> FuzzReport:
    """Run every operation of the served app's schema with positive and negative cases."""
    import httpx

    doc: dict[str, Any] = httpx.get(f"{base_url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    headers = {"Authorization": f"Bearer {key}"}
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations += 1
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=seed is not None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=60)
            report.requests += 1
            report.statuses[response.status_code] += 1
            label = f"{case.method} {case.path} -> {response.status_code}"
            if response.status_code >= 500:
                report.server_errors.append(f"{label}: {response.text[:300]}")
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except Exception as exc:  # one failure per case is enough to report
                report.failures.append(f"{label}: {str(exc)[:600]}")
                if stop_on_failure:
                    raise

        run()
    return report
