"""Service-backed steps bound by name: train (stand-in), register, approve-if-policy-passes, deploy."""

from __future__ import annotations

from pathlib import Path

import pytest
import tide_pipeline_samples as samples

from tideml.errors import ValidationError
from tideml.pipelines import StepOptions, bind_service, pipeline, run_pipeline, service_step
from tideml.pipelines.services import DEFAULT_BINDINGS, binding_for
from tideml.workspace import Workspace


def test_register_then_approve_only_when_the_policy_passes(workspace: Workspace, marks: Path) -> None:
    workspace.registry.create_group("claims-fraud", policy=["test_auc >= 0.75"])

    weak = run_pipeline(workspace, samples.governed, {"n": 10}, executor="inline", progress=False)
    assert weak.status == "Succeeded", weak.error
    approval = weak.output(workspace, "approve")
    assert approval["approved"] == 0 and approval["policy_passed"] is False
    assert approval["rules"][0]["detail"] == "test_auc = 0.7"
    assert weak.skipped == ["deploy"]  # the gate kept an unapproved model from being deployed
    assert workspace.registry.get_version("claims-fraud/1").status == "PendingManualApproval"

    strong = run_pipeline(workspace, samples.governed, {"n": 20}, executor="inline", progress=False)
    assert strong.status == "Failed"  # deploy ran; its service does not exist in this workspace
    assert strong.output(workspace, "register")["ref"] == "claims-fraud/2"
    assert strong.output(workspace, "approve")["approved"] == 1
    assert workspace.registry.get_version("claims-fraud/2").status == "Approved"
    assert "the workspace has no service 'serving'" in (strong.error or "")
    assert "bind_service" in (strong.error or "")

    again = run_pipeline(workspace, samples.governed, {"n": 20}, executor="inline", progress=False)
    assert set(again.cached) == {"train", "register", "approve", "approved"}  # no duplicate registration
    assert [v.version for v in workspace.registry.list_versions("claims-fraud")] == [1, 2]


def test_kinds_can_be_rebound_by_name(workspace: Workspace, marks: Path) -> None:
    assert binding_for("register") == "registry.register"
    assert set(DEFAULT_BINDINGS) >= {"wrangle", "ingest", "dataset", "train", "tune", "evaluate", "clarify"}
    with pytest.raises(ValidationError, match="not a service target"):
        bind_service("deploy", "no targets here")
    bind_service("deploy", "tide_pipeline_samples:store_model")
    try:

        @pipeline
        def deployed(n: int = 3) -> None:
            from tideml.pipelines import deploy_step

            deploy_step("deploy", n=n)

        result = run_pipeline(workspace, deployed, executor="inline", progress=False)
        assert result.status == "Succeeded", result.error
        assert result.output(workspace, "deploy")["metrics"] == {"test_auc": 0.63}
    finally:
        bind_service("deploy", DEFAULT_BINDINGS["deploy"])


def test_service_steps_are_validated_at_definition_time() -> None:
    @pipeline
    def unknown(n: int = 1) -> None:
        service_step("teleport", "t", {"n": n})

    with pytest.raises(ValidationError, match="unknown service step kind"):
        _ = unknown.graph

    @pipeline
    def nested_result(n: int = 1) -> None:
        opts = StepOptions(target="tide_pipeline_samples:store_model", result=lambda r: r)
        service_step("train", "t", {"n": n}, opts)

    with pytest.raises(ValidationError, match="module-level"):
        _ = nested_result.graph
