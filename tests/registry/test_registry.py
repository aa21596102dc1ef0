"""The registry on SQLite and the real PostgreSQL: evidence, policy-gated approval, aliases, audit."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import tideml.registry.service as service
from tideml import Workspace
from tideml.errors import Conflict, NotFound, PolicyViolation, ValidationError
from tideml.meta.registry_tables import ModelAuditEvent
from tideml.registry import compare_versions, model_card_html, model_card_markdown


def put_model(ws: Workspace, seed: str) -> str:
    return ws.put_artifact(f"model-{seed}".encode(), "application/ubjson").sha256


def register(ws: Workspace, seed: str, **metrics: float) -> Any:
    return ws.registry.register("fraud", put_model(ws, seed), metrics=metrics or {"test_auc": 0.8})


def test_register_numbers_versions_and_records_lineage(any_workspace: Workspace) -> None:
    ws = any_workspace
    dataset = ws.put_artifact(b"parquet bytes", "application/vnd.apache.parquet").sha256
    v1 = ws.registry.register(
        "fraud",
        put_model(ws, "a"),
        metrics={"test_auc": 0.81},
        evidence={"dataset": dataset},
        tags={"owner": "risk"},
    )
    v2 = register(ws, "b")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.status == "PendingManualApproval" and v1.tags == {"owner": "risk"}
    assert ws.registry.get_version("fraud").version == 2
    assert ws.registry.get_version("model:fraud/1").evidence == {"dataset": dataset}
    node = ws.lineage.find_artifact(type="Model", uri="model:fraud/1")
    up = ws.lineage.graph(node, "upstream")
    assert {n.sha256 for n in up.artifacts()} >= {v1.model_sha256, dataset}


def test_register_refuses_missing_artifacts_and_bad_metrics(workspace: Workspace) -> None:
    ws = workspace
    with pytest.raises(NotFound, match="model_sha256"):
        ws.registry.register("fraud", "a" * 64)
    model = put_model(ws, "x")
    with pytest.raises(NotFound, match=r"evidence\.bias_report"):
        ws.registry.register("fraud", model, evidence={"bias_report": "b" * 64})
    with pytest.raises(ValidationError, match=r"evidence\.weights"):
        ws.registry.register("fraud", model, evidence={"weights": model})
    with pytest.raises(ValidationError, match=r"metrics\.auc"):
        ws.registry.register("fraud", model, metrics={"auc": float("nan")})
    with pytest.raises(ValidationError, match="valid name"):
        ws.registry.register("Fraud Model", model)


def test_policy_refuses_approval_naming_the_rule(any_workspace: Workspace) -> None:
    ws = any_workspace
    ws.registry.create_group("fraud", policy=["test_auc >= 0.75", "abs(dppl) <= 0.1"])
    weak = register(ws, "weak", test_auc=0.74, dppl=0.02)
    with pytest.raises(PolicyViolation, match=r"rule 'test_auc >= 0.75' failed \(test_auc = 0\.74\)"):
        ws.registry.approve("fraud/1", actor="alice")
    biased = register(ws, "biased", test_auc=0.8, dppl=-0.3)
    with pytest.raises(PolicyViolation, match=r"abs\(dppl\) <= 0.1.*abs\(dppl\) = 0\.3"):
        ws.registry.approve("fraud/2", actor="alice")
    missing = register(ws, "nodppl", test_auc=0.8)
    with pytest.raises(PolicyViolation, match="not in the version's evidence"):
        ws.registry.approve("fraud/3", actor="alice")
    good = register(ws, "good", test_auc=0.8, dppl=-0.05)
    assert ws.registry.approve("fraud/4", actor="alice", reason="meets policy").status == "Approved"
    assert [ws.registry.get_version(f"fraud/{v.version}").status for v in (weak, biased, missing)] == [
        "PendingManualApproval"
    ] * 3
    refused = [e for e in ws.registry.history("fraud", 1) if e.event == "approval_refused"]
    assert refused and refused[0].details["failed"] == ["test_auc >= 0.75"]
    assert good.version == 4


def test_bad_policy_rule_is_refused_at_creation(workspace: Workspace) -> None:
    with pytest.raises(ValidationError, match="cannot parse rule"):
        workspace.registry.create_group("fraud", policy=["auc is high"])


def test_two_reviewer_approval(workspace: Workspace) -> None:
    ws = workspace
    ws.registry.create_group("fraud", required_approvals=2)
    register(ws, "a")
    first = ws.registry.approve("fraud/1", actor="alice")
    assert first.status == "PendingManualApproval" and first.approvals == ["alice"]
    with pytest.raises(Conflict, match="another reviewer"):
        ws.registry.approve("fraud/1", actor="alice")
    second = ws.registry.approve("fraud/1", actor="bob")
    assert second.status == "Approved" and second.approvals == ["alice", "bob"]
    assert [e.event for e in ws.registry.history("fraud", 1)] == ["registered", "approval_vote", "approved"]


def test_aliases_only_on_approved_versions_and_history(any_workspace: Workspace) -> None:
    ws = any_workspace
    register(ws, "a")
    register(ws, "b")
    with pytest.raises(PolicyViolation, match="only an Approved version"):
        ws.registry.set_alias("fraud", "production", 1)
    ws.registry.approve("fraud/1", actor="alice")
    ws.registry.set_alias("fraud", "production", 1, actor="alice")
    t1 = datetime.now(UTC)
    assert ws.registry.get_version("fraud@production").version == 1
    ws.registry.approve("fraud/2", actor="alice")
    moved = ws.registry.set_alias("fraud", "production", 2, actor="bob", reason="better AUC")
    assert moved.aliases == ["production"]
    assert ws.registry.get_version("fraud/1").aliases == []
    assert ws.registry.live_at("fraud", "production", t1) == 1
    assert ws.registry.live_at("fraud", "production", datetime.now(UTC)) == 2
    assert ws.registry.live_at("fraud", "production", t1 - timedelta(days=1)) is None
    ws.registry.reject("fraud/2", actor="carol", reason="bias found in review")
    with pytest.raises(NotFound, match="no such alias"):
        ws.registry.get_version("fraud@production")
    events = [(e.version, e.event) for e in ws.registry.history("fraud") if e.version == 2]
    assert events[-2:] == [(2, "rejected"), (2, "alias_removed")]


def test_audit_trail_cannot_be_edited(workspace: Workspace) -> None:
    ws = workspace
    register(ws, "a")
    trail = ws.registry.history("fraud", 1)
    with pytest.raises(AttributeError):
        trail[0].actor = "mallory"  # type: ignore[misc]
    with pytest.raises(Conflict, match="append-only"), ws.metadata.session() as s:
        s.scalars(sa.select(ModelAuditEvent)).first().reason = "rewritten"  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="append-only"), ws.metadata.session() as s:
        s.delete(s.scalars(sa.select(ModelAuditEvent)).first())
    assert ws.registry.history("fraud", 1) == trail


def test_compare_and_model_card(workspace: Workspace) -> None:
    ws = workspace
    ws.registry.create_group("fraud", policy=["test_auc >= 0.75"])
    a = register(ws, "a", test_auc=0.78, test_f1=0.3)
    b = register(ws, "b", test_auc=0.82, test_f1=0.35)
    ws.registry.approve("fraud/2", actor="alice", reason="better")
    table = compare_versions([a, ws.registry.get_version("fraud/2")])
    auc = next(r for r in table["metrics"] if r["metric"] == "test_auc")
    assert auc["values"] == [0.78, 0.82] and auc["delta_to_first"][1] == pytest.approx(0.04)
    group = ws.registry.get_group("fraud")
    card = model_card_markdown(group, ws.registry.get_version("fraud/2"), ws.registry.history("fraud", 2))
    assert "# Model card: fraud/2" in card and "| `test_auc >= 0.75` | 0.82 | pass |" in card
    assert f"sha256:{b.model_sha256}" in card and "alice" in card
    page = model_card_html(group, ws.registry.get_version("fraud/2"), ws.registry.history("fraud", 2))
    assert page.startswith("<!doctype html>") and "http" not in page


def test_hooks_fire_after_commit(workspace: Workspace) -> None:
    seen: list[str] = []
    workspace.registry.on("approved", lambda v: seen.append(workspace.registry.get_version(v.ref).status))
    register(workspace, "a")
    workspace.registry.approve("fraud/1", actor="alice")
    assert seen == ["Approved"]


def _race(monkeypatch: pytest.MonkeyPatch, *calls: Any) -> list[BaseException | None]:
    """Run calls in threads that all read before any writes: each waits at a barrier in `_audit`."""
    barrier = threading.Barrier(len(calls), timeout=10)
    original = service._audit

    def synchronised(*args: Any, **kwargs: Any) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        original(*args, **kwargs)

    monkeypatch.setattr(service, "_audit", synchronised)
    results: list[BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.setattr(service, "_audit", original)
    return results


@pytest.mark.postgres
def test_racing_approvals_on_postgres_have_one_winner(
    tmp_path: Any, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDE_METADATA_URL", postgres_url)
    with Workspace.init(tmp_path / "ws") as ws:
        register(ws, "a")
        results = _race(
            monkeypatch,
            lambda: ws.registry.approve("fraud/1", actor="alice"),
            lambda: ws.registry.approve("fraud/1", actor="bob"),
        )
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"]
        approved = [e for e in ws.registry.history("fraud", 1) if e.event == "approved"]
        assert len(approved) == 1
        assert ws.registry.get_version("fraud/1").approvals == [approved[0].actor]


@pytest.mark.postgres
def test_racing_alias_moves_on_postgres_have_one_winner(
    tmp_path: Any, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDE_METADATA_URL", postgres_url)
    with Workspace.init(tmp_path / "ws") as ws:
        for seed in "abc":
            register(ws, seed)
            ws.registry.approve(f"fraud/{'abc'.index(seed) + 1}", actor="alice")
        ws.registry.set_alias("fraud", "production", 1)
        results = _race(
            monkeypatch,
            lambda: ws.registry.set_alias("fraud", "production", 2, actor="alice"),
            lambda: ws.registry.set_alias("fraud", "production", 3, actor="bob"),
        )
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"]
        winner = 2 if results[0] is None else 3
        assert ws.registry.get_version("fraud@production").version == winner
        moves = [e for e in ws.registry.history("fraud") if e.event == "alias_set"]
        assert [e.version for e in moves] == [1, winner]
