"""Analyses: they find the leak, the collinear column and the imbalance, and the HTML needs no network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tideml.errors import ValidationError
from tideml.wrangle import analyze


@pytest.fixture(scope="module")
def claims(request: pytest.FixtureRequest) -> pl.DataFrame:
    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "aws-autoclaims" / "claims.csv"
    rng = np.random.default_rng(0)
    raw = pl.read_csv(path)
    noisy = raw["fraud"].to_numpy() + rng.normal(0, 0.01, raw.height)
    return raw.with_columns(pl.Series("leak", noisy))  # a column that is the label plus noise


@pytest.fixture(scope="module")
def report(claims: pl.DataFrame) -> object:
    return analyze(claims, target="fraud", seed=0, title="claims")


def test_summary_and_class_balance(report: object, claims: pl.DataFrame) -> None:
    from tideml.wrangle import AnalysisReport

    assert isinstance(report, AnalysisReport)
    assert (report.rows, report.columns, report.problem) == (5000, claims.width, "classification")
    by_column = {c["column"]: c for c in report.summary}
    assert by_column["policy_id"]["min"] == 1 and by_column["policy_id"]["max"] == 5000
    assert by_column["incident_type"]["most_frequent"] == {"value": "Collision", "count": 4272}
    assert by_column["incident_type"]["least_frequent"] == {"value": "Theft", "count": 244}
    assert report.class_balance == [
        {"value": 0, "count": 4836, "share": 0.9672},
        {"value": 1, "count": 164, "share": 0.0328},
    ]
    assert any("imbalanced" in w for w in report.warnings)


def test_leakage_check_flags_the_planted_leak_and_not_the_honest_features(report: object) -> None:
    scores = {item["column"]: item for item in report.leakage}  # type: ignore[attr-defined]
    assert scores["leak"]["score"] > 0.99 and scores["leak"]["flag"] == "possible leakage"
    assert report.leakage[0]["column"] == "leak"  # type: ignore[attr-defined]
    for column in ("policy_id", "incident_month", "num_witnesses"):
        assert scores[column]["score"] < 0.7, scores[column]


def test_vif_finds_the_sum_column(report: object) -> None:
    vif = {item["column"]: item["vif"] for item in report.vif}  # type: ignore[attr-defined]
    # total_claim_amount = injury_claim + vehicle_claim: perfectly collinear, clipped at 50
    assert vif["total_claim_amount"] == vif["injury_claim"] == 50.0
    assert vif["incident_month"] < 1.5


def test_quick_model_and_importances(report: object) -> None:
    model = report.quick_model  # type: ignore[attr-defined]
    assert model["model"] == "xgboost" and model["test_rows"] == 1500
    assert model["roc_auc"] > 0.99  # the leak makes it trivial
    assert model["importances"][0]["column"] == "leak"
    assert abs(sum(i["importance"] for i in model["importances"]) - 1.0) < 1e-4


def test_report_files_are_json_and_self_contained_html(report: object, tmp_path: Path) -> None:
    written = report.save(tmp_path)  # type: ignore[attr-defined]
    data = json.loads(written["json"].read_text())
    assert data["target"] == "fraud" and len(data["summary"]) == 19
    html = written["html"].read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html
    assert "Target leakage" in html and "leak" in html


def test_without_a_target_only_the_profile_is_computed() -> None:
    frame = pl.DataFrame({"a": [1, 2, 3, 4], "b": [2.0, 4.0, 6.0, 8.5], "c": ["x", "y", None, "x"]})
    report = analyze(frame)
    assert report.problem is None and report.leakage == [] and report.quick_model is None
    assert report.correlations["columns"] == ["a", "b"]
    assert "c: 1 missing values" in report.warnings
    with pytest.raises(ValidationError, match="unknown column"):
        analyze(frame, target="nope")


def test_a_many_valued_numeric_target_is_regression() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=400)
    frame = pl.DataFrame({"x": x, "noise": rng.normal(size=400), "y": 3 * x + rng.normal(0, 0.1, 400)})
    report = analyze(frame, target="y")
    assert report.problem == "regression"
    scores = {i["column"]: i["score"] for i in report.leakage}
    assert scores["x"] > 0.9 > scores["noise"]
    assert report.quick_model is not None and report.quick_model["r2"] > 0.9
