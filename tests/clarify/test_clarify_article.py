"""The article's data and config through `tide clarify bias` / `tide clarify explain` and the service:
Clarify's analysis.json layout, the HTML report, stored artifacts and lineage (data + model → Report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import xgboost as xgb

import tideml.cli.clarify  # noqa: F401  -- registers `tide clarify`
from tideml.clarify import ClarifyService
from tideml.cli import main
from tideml.workspace import Workspace

PRE = ["CDDL", "CI", "DPL", "JS", "KL", "KS", "LP", "TVD"]
POST = ["AD", "CDDPL", "DAR", "DCA", "DCR", "DI", "DPPL", "DRR", "FT", "GE", "RD", "SD", "TE"]
DESCRIPTIONS = {
    "CDDL": "Conditional Demographic Disparity in Labels (CDDL)",
    "CI": "Class Imbalance (CI)",
    "DPL": "Difference in Positive Proportions in Labels (DPL)",
    "JS": "Jensen-Shannon Divergence (JS)",
    "KL": "Kullback-Liebler Divergence (KL)",
    "KS": "Kolmogorov-Smirnov Distance (KS)",
    "LP": "L-p Norm (LP)",
    "TVD": "Total Variation Distance (TVD)",
    "AD": "Accuracy Difference (AD)",
    "CDDPL": "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
    "DAR": "Difference in Acceptance Rates (DAR)",
    "DCA": "Difference in Conditional Acceptance (DCA)",
    "DCR": "Difference in Conditional Rejection (DCR)",
    "DI": "Disparate Impact (DI)",
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "DRR": "Difference in Rejection Rates (DRR)",
    "FT": "Flip Test (FT)",
    "GE": "Generalized Entropy (GE)",
    "RD": "Recall Difference (RD)",
    "SD": "Specificity Difference (SD)",
    "TE": "Treatment Equality (TE)",
}


@pytest.fixture
def prepared(article_data: Path, tmp_path: Path) -> dict[str, Any]:
    claims = pl.read_csv(article_data / "claims.csv")
    customers = pl.read_csv(article_data / "customers.csv")
    frame = claims.join(customers, on="policy_id").with_columns(
        (pl.col("customer_gender") == "Female").cast(pl.Int64).alias("customer_gender_female")
    )
    numeric = [c for c, t in frame.schema.items() if t.is_numeric() and c not in ("fraud", "policy_id")]
    data = frame.select(["policy_id", "fraud", "policy_state", *numeric])
    data_path = tmp_path / "train.csv"
    data.write_csv(data_path)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 0},
        xgb.DMatrix(data.select(numeric).to_pandas(), label=data["fraud"].to_numpy()),
        30,
    )
    model_path = tmp_path / "model.json"
    booster.save_model(str(model_path))
    config = {
        "dataset_type": "text/csv",
        "label": "fraud",
        "label_values_or_threshold": [0],
        "facet": [{"name_or_index": "customer_gender_female", "value_or_threshold": [1]}],
        "excluded_columns": ["policy_id", "policy_state"],
        "probability_threshold": 0.5,
        "methods": {"pre_training_bias": {"methods": "all"}, "post_training_bias": {"methods": "all"}},
    }
    config_path = tmp_path / "analysis_config.json"
    config_path.write_text(json.dumps(config))
    ws_path = tmp_path / "ws"
    Workspace.init(ws_path).close()
    return {
        "data": data_path,
        "model": model_path,
        "config": config_path,
        "ws": ws_path,
        "numeric": numeric,
        "frame": data,
        "booster": booster,
        "cfg": config,
    }


def tide(args: list[str]) -> None:
    """Run the CLI in-process; success is exit code 0."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code in (0, None)


def check_clarify_layout(doc: dict[str, Any], pre: list[str], post: list[str]) -> None:
    assert doc["version"] == "1.0"
    for key, codes in (("pre_training_bias_metrics", pre), ("post_training_bias_metrics", post)):
        block = doc[key]
        assert set(block) == {"label", "facets", "label_value_or_threshold"}
        assert block["label"] == "fraud"
        assert block["label_value_or_threshold"] == "0"
        assert list(block["facets"]) == ["customer_gender_female"]
        (entry,) = block["facets"]["customer_gender_female"]
        assert set(entry) == {"value_or_threshold", "metrics"}
        assert entry["value_or_threshold"] == "1"
        names = [m["name"] for m in entry["metrics"]]
        assert names == codes == sorted(codes)
        for m in entry["metrics"]:
            assert m["description"] == DESCRIPTIONS[m["name"]]
            assert set(m) in ({"name", "description", "value"}, {"name", "description", "value", "error"})
            if "error" in m:
                assert m["value"] is None and isinstance(m["error"], str)
            else:
                assert isinstance(m["value"], float) or m["value"] in ("Infinity", "-Infinity")


def test_tide_clarify_bias_writes_clarify_layout(
    prepared: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    tide(
        [
            "clarify",
            "bias",
            "--config",
            str(prepared["config"]),
            "--data",
            str(prepared["data"]),
            "--model",
            str(prepared["model"]),
            "--out",
            str(out),
            "-w",
            str(prepared["ws"]),
        ]
    )
    doc = json.loads((out / "analysis.json").read_text())
    # the default (correct) mode skips CDDL/CDDPL without a group variable, and says so
    check_clarify_layout(doc, [c for c in PRE if c != "CDDL"], [c for c in POST if c != "CDDPL"])
    pre = {
        m["name"]: m["value"]
        for m in doc["pre_training_bias_metrics"]["facets"]["customer_gender_female"][0]["metrics"]
    }
    # raw data: 2208 female of 5000 rows; fraud 39/2208 female, 125/2792 others; positive = not fraud
    assert pre["CI"] == pytest.approx((2792 - 2208) / 5000)
    assert pre["DPL"] == pytest.approx((2792 - 125) / 2792 - (2208 - 39) / 2208)
    extras = json.loads((out / "tideml_extras.json").read_text())
    assert any("CDDL" in n for n in extras["notes"])
    assert extras["probability_threshold"] == 0.5
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "Class Imbalance (CI)" in html
    printed = capsys.readouterr().out.replace("\n", "")  # Rich wraps long paths at the console width
    assert "CI" in printed and "analysis.json" in printed


def test_compat_mode_reproduces_the_articles_null_cddl(prepared: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "compat"
    tide(
        [
            "clarify",
            "bias",
            "--config",
            str(prepared["config"]),
            "--data",
            str(prepared["data"]),
            "--model",
            str(prepared["model"]),
            "--out",
            str(out),
            "--compat",
            "smclarify",
            "-w",
            str(prepared["ws"]),
        ]
    )
    doc = json.loads((out / "analysis.json").read_text())
    check_clarify_layout(doc, PRE, POST)
    for key, code in (("pre_training_bias_metrics", "CDDL"), ("post_training_bias_metrics", "CDDPL")):
        metrics = doc[key]["facets"]["customer_gender_female"][0]["metrics"]
        entry = next(m for m in metrics if m["name"] == code)
        assert entry == {
            "name": code,
            "description": DESCRIPTIONS[code],
            "value": None,
            "error": "Group variable is empty or not provided",
        }


def test_group_variable_gives_cddl(prepared: dict[str, Any], tmp_path: Path) -> None:
    cfg = {**prepared["cfg"], "group_variable": "policy_state"}
    with Workspace.open(prepared["ws"]) as ws:
        run = ClarifyService(ws).bias(
            prepared["data"], cfg, model=str(prepared["model"]), out_dir=tmp_path / "g", progress=False
        )
    doc = run.output.analysis_json()
    check_clarify_layout(doc, PRE, POST)
    cddl = doc["pre_training_bias_metrics"]["facets"]["customer_gender_female"][0]["metrics"][0]
    assert cddl["name"] == "CDDL" and isinstance(cddl["value"], float)


def test_service_records_lineage_from_data_and_model_to_report(prepared: dict[str, Any]) -> None:
    with Workspace.open(prepared["ws"]) as ws:
        run = ClarifyService(ws).bias(
            prepared["data"], prepared["config"], model=str(prepared["model"]), progress=False
        )
        report_id = ws.lineage.find_artifact(sha256=run.artifacts["analysis.json"])
        upstream = ws.lineage.graph(report_id, "upstream")
        types = {(n.type, n.name) for n in upstream.artifacts()}
        assert ("Dataset", "train.csv") in types
        assert ("Model", "model.json") in types
        stored = ClarifyService(ws).read_report(run.artifacts["analysis.json"])
        assert stored == json.loads(json.dumps(run.output.analysis_json()))
        assert ws.artifacts.get(run.artifacts["report.html"]).startswith(b"<!doctype html>")


def test_model_by_artifact_sha256_and_explain(
    prepared: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workspace.open(prepared["ws"]) as ws:
        ref = ws.put_artifact(prepared["model"].read_bytes(), "application/json")
    out = tmp_path / "explain"
    tide(
        [
            "clarify",
            "explain",
            "--model",
            ref.sha256,
            "--data",
            str(prepared["data"]),
            "--rows",
            "300",
            "--out",
            str(out),
            "-w",
            str(prepared["ws"]),
            "--config",
            str(prepared["config"]),
        ]
    )
    doc = json.loads((out / "analysis.json").read_text())
    tree = doc["explanations"]["tree_shap"]["label0"]
    assert set(tree["global_shap_values"]) == set(prepared["numeric"])
    local = np.loadtxt(out / "explanations_shap" / "out.csv", delimiter=",", skiprows=1)
    assert local.shape == (300, len(prepared["numeric"]) + 1)  # id column + one per feature
    assert "tree_shap" in capsys.readouterr().out


def test_bad_input_is_one_line_not_a_traceback(
    prepared: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "clarify",
                "bias",
                "--config",
                str(prepared["config"]),
                "--data",
                "/nonexistent.csv",
                "-w",
                str(prepared["ws"]),
            ]
        )
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_kernel_shap_bootstrap_and_json_output(
    prepared: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = {
        **prepared["cfg"],
        "bootstrap": {"n_boot": 100, "seed": 3},
        "methods": {
            "pre_training_bias": {"methods": ["CI", "DPL"]},
            "shap": {"baseline": "median", "num_samples": 64, "max_rows": 6, "agg_method": "mean_sq"},
            "report": {"name": "claims", "title": "Claims fraud"},
        },
    }
    config = tmp_path / "kernel.json"
    config.write_text(json.dumps(cfg))
    out = tmp_path / "k"
    tide(
        [
            "clarify",
            "bias",
            "--config",
            str(config),
            "--data",
            str(prepared["data"]),
            "--model",
            str(prepared["model"]),
            "--out",
            str(out),
            "-w",
            str(prepared["ws"]),
            "--json",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    kernel = printed["analysis"]["explanations"]["kernel_shap"]["label0"]
    assert set(kernel["global_shap_values"]) == set(prepared["numeric"])
    assert all(v >= 0 for v in kernel["global_shap_values"].values())  # mean of squares
    assert (out / "claims.html").exists()
    local = (out / "explanations_shap" / "out.csv").read_text().splitlines()
    assert len(local) == 1 + 6
    extras = json.loads((out / "tideml_extras.json").read_text())
    dpl = extras["metrics"]["pre_training"]["customer_gender_female"][0]["metrics"]["DPL"]
    assert dpl["ci"][0] <= dpl["value"] <= dpl["ci"][1]
    assert extras["explanation"]["settings"]["num_samples"] == 64
