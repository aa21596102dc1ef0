"""Schemathesis over the published OpenAPI schema: valid and invalid requests never get a server error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

EXAMPLES = 60  # per operation and mode; invocations get most of the generated bodies


def test_schemathesis_finds_no_server_error(served: Any) -> None:
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the test extras")
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

    served.deploy(capture={"enabled": False})
    _, client = served.client()
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert "POST /invocations" in labels and "GET /ready" in labels
    calls = {"n": 0, "statuses": set()}
    for op in operations:
        modes = [GenerationMode.POSITIVE]
        if op.method.upper() == "POST":  # GET routes take no input to get wrong
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES if op.label == "POST /invocations" else 10,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                response = case.call_and_validate(checks=[not_a_server_error])
                calls["n"] += 1
                calls["statuses"].add(response.status_code)

            run()
    assert calls["n"] > 2 * EXAMPLES
    assert 200 in calls["statuses"] and 422 in calls["statuses"]  # it reached both the model and the checks
    assert "internal_error" not in client.get("/metrics").text
