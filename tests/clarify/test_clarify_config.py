"""analysis_config.json parsing: Clarify's fields, tideml's extensions, errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tideml.clarify import load_config, parse_config, run_analysis
from tideml.errors import NotFound, ValidationError

ARTICLE_EXAMPLE = {
    "version": "1.0",
    "dataset_type": "text/csv",
    "headers": [
        "fraud",
        "customer_gender_female",
        "customer_age",
        "policy_state",
        "num_insurers_past_5_years",
    ],
    "label": "fraud",
    "label_values_or_threshold": [0],
    "facet": [{"name_or_index": "customer_gender_female", "value_or_threshold": [1]}],
    "group_variable": "policy_state",
    "probability_threshold": 0.5,
    "methods": {
        "pre_training_bias": {"methods": "all"},
        "post_training_bias": {"methods": "all"},
        "shap": {
            "num_clusters": 5,
            "num_samples": 2088,
            "agg_method": "mean_abs",
            "seed": 0,
            "save_local_shap_values": True,
        },
        "report": {"name": "report", "title": "Claims fraud: bias and explanations"},
    },
    "predictor": {"endpoint_name": "claims-fraud", "content_type": "text/csv", "accept_type": "text/csv"},
}


def test_the_reference_example_parses() -> None:
    cfg = parse_config(ARTICLE_EXAMPLE)
    assert cfg.facet[0].value_or_threshold == [1]
    assert cfg.methods.shap is not None and cfg.methods.shap.num_clusters == 5
    assert cfg.predictor is not None and cfg.predictor.endpoint_name == "claims-fraud"


def test_unknown_field_names_the_path_and_the_fix() -> None:
    bad = {**ARTICLE_EXAMPLE, "methods": {"pre_training_bias": {"methods": "all", "metric": "CI"}}}
    with pytest.raises(ValidationError) as err:
        parse_config(bad)
    assert err.value.field == "methods.pre_training_bias.metric"
    assert "remove" in (err.value.fix or "")


def test_wrong_type_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        parse_config({**ARTICLE_EXAMPLE, "probability_threshold": 3})
    assert err.value.field == "probability_threshold"


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        load_config(broken)
    good = tmp_path / "ok.json"
    good.write_text(json.dumps(ARTICLE_EXAMPLE))
    assert load_config(good).label == "fraud"


def test_indices_resolve_against_headers() -> None:
    frame = pd.DataFrame({"y": [1, 0, 1, 0], "sex": ["F", "M", "F", "M"], "x": [1, 2, 3, 4]})
    cfg = {
        "headers": ["y", "sex", "x"],
        "label": 0,
        "label_values_or_threshold": [1],
        "facet": [{"name_or_index": 1, "value_or_threshold": ["F"]}],
        "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]}},
    }
    out = run_analysis(cfg, frame)
    block = out.analysis_json()["pre_training_bias_metrics"]
    assert block["label"] == "y"
    assert list(block["facets"]) == ["sex"]
    assert [m["name"] for m in block["facets"]["sex"][0]["metrics"]] == ["CI", "DPL"]
    with pytest.raises(ValidationError, match="outside"):
        run_analysis({**cfg, "label": 9}, frame)


def test_missing_label_column_is_a_clear_error() -> None:
    frame = pd.DataFrame({"y": [1, 0], "sex": ["F", "M"]})
    cfg = {
        "label": "fraud",
        "label_values_or_threshold": [1],
        "facet": [{"name_or_index": "sex"}],
        "methods": {"pre_training_bias": {"methods": "all"}},
    }
    with pytest.raises(ValidationError) as err:
        run_analysis(cfg, frame)
    assert err.value.field == "label" and "y, sex" in (err.value.fix or "")


def test_post_training_without_a_model_or_predictions_is_a_clear_error() -> None:
    frame = pd.DataFrame({"y": [1, 0, 1, 0], "sex": ["F", "M", "F", "M"]})
    cfg = {
        "label": "y",
        "label_values_or_threshold": [1],
        "facet": [{"name_or_index": "sex", "value_or_threshold": ["F"]}],
        "methods": {"post_training_bias": {"methods": "all"}},
    }
    with pytest.raises(ValidationError) as err:
        run_analysis(cfg, frame)
    assert "model" in (err.value.fix or "")


def test_side_files_join_by_position_or_joinsource(tmp_path: Path) -> None:
    from tideml.clarify import load_dataset

    (tmp_path / "data.csv").write_text("id,y,x\n1,1,0.5\n2,0,0.1\n3,1,0.7\n4,0,0.2\n")
    (tmp_path / "facet.csv").write_text("id,sex\n3,F\n1,F\n2,M\n4,M\n")
    (tmp_path / "pred.csv").write_text("1\n0\n0\n0\n")
    cfg = parse_config(
        {
            "label": "y",
            "label_values_or_threshold": [1],
            "joinsource_name_or_index": "id",
            "facet_dataset_uri": str(tmp_path / "facet.csv"),
            "facet": [{"name_or_index": "sex", "value_or_threshold": ["F"]}],
            "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]}},
        }
    )
    frame = load_dataset(cfg, tmp_path / "data.csv")
    assert frame["sex"].to_list() == ["F", "M", "F", "M"]  # joined on id, data order kept
    by_position = parse_config(
        {
            "label": "y",
            "label_values_or_threshold": [1],
            "predicted_label": "yhat",
            "predicted_label_dataset_uri": str(tmp_path / "pred.csv"),
            "predicted_label_headers": ["yhat"],
            "facet": [{"name_or_index": "x", "value_or_threshold": 0.3}],
            "methods": {"post_training_bias": {"methods": ["DPPL"]}},
        }
    )
    frame = load_dataset(by_position, tmp_path / "data.csv")
    assert frame["yhat"].to_list() == [1, 0, 0, 0]
    doc = run_analysis(by_position, frame).analysis_json()
    entry = doc["post_training_bias_metrics"]["facets"]["x"][0]
    assert entry["value_or_threshold"] == "(0.3, 0.7]"
    # a: x <= 0.3 (rows 2, 4) predicted 0, 0; d: rows 1, 3 predicted 1, 0
    assert entry["metrics"][0]["value"] == pytest.approx(0.0 - 0.5)
