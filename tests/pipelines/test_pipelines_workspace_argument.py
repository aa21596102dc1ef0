"""A step may take `ws`: the runner passes the workspace where the step executes."""

from __future__ import annotations

import pytest
import tide_pipeline_samples as samples

from tideml import Workspace
from tideml.errors import ValidationError
from tideml.pipelines import pipeline, run_pipeline


@pytest.mark.parametrize("executor", ["inline", "local:1"])
def test_step_receives_the_workspace(workspace: Workspace, executor: str) -> None:
    result = run_pipeline(
        workspace, samples.uses_workspace, {"payload": "abc"}, executor=executor, progress=False
    )
    out = result.output(workspace, "stored_size")
    assert out["size"] == 3 and out["root"] == str(workspace.root)
    assert workspace.artifacts.get(out["sha256"]) == b"abc"
    definition = samples.uses_workspace.to_json()
    assert "ws" not in str(definition["steps"][0]["arguments"])


def test_passing_ws_in_the_pipeline_is_refused() -> None:
    @pipeline
    def bad() -> None:
        samples.stored_size(ws=None, payload="x")

    with pytest.raises(ValidationError, match="passed by the runner"):
        bad.to_json()
