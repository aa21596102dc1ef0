"""The managed file layouts, hand edits, and clear errors for malformed capture and constraint files."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import polars as pl
import pytest

from tideml.errors import NotFound, ValidationError
from tideml.monitor import (
    load_baseline,
    load_constraints,
    load_statistics,
    read_window,
    run_checks,
    suggest_baseline,
)
from tideml.serving.capture import CaptureWriter


@pytest.fixture(scope="module")
def baseline_dir(reference: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("baseline")
    suggest_baseline(
        reference.head(5000), label_column="fraud", prediction_column="probability", threshold=0.05
    ).write(folder)
    return folder


# -- layouts --------------------------------------------------------------------------------------------
def test_statistics_json_has_the_managed_layout(baseline_dir: Path) -> None:
    doc = json.loads((baseline_dir / "statistics.json").read_text())
    assert doc["version"] == 0.0 and doc["dataset"] == {"item_count": 5000}
    features = {f["name"]: f for f in doc["features"]}
    age = features["customer_age"]
    assert age["inferred_type"] == "Integral"
    ns = age["numerical_statistics"]
    assert set(ns) >= {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    assert set(ns["common"]) == {"num_present", "num_missing"}
    kll = ns["distribution"]["kll"]
    assert len(kll["buckets"]) == 10 and set(kll["buckets"][0]) == {"lower_bound", "upper_bound", "count"}
    assert sum(b["count"] for b in kll["buckets"]) == 5000
    assert set(kll["sketch"]["parameters"]) == {"c", "k"}
    weights = sum(len(level) * 2**h for h, level in enumerate(kll["sketch"]["data"]))
    assert weights == 5000
    state = features["policy_state"]
    assert state["inferred_type"] == "String"
    ss = state["string_statistics"]
    assert ss["distinct_count"] == 6
    assert {b["value"] for b in ss["distribution"]["categorical"]["buckets"]} == {
        "CA",
        "WA",
        "AZ",
        "OR",
        "NV",
        "ID",
    }
    assert features["vehicle_claim"]["inferred_type"] == "Fractional"
    assert "fraud" not in features  # the label is not a feature


def test_constraints_json_has_the_managed_layout(baseline_dir: Path) -> None:
    doc = json.loads((baseline_dir / "constraints.json").read_text())
    assert set(doc) == {"version", "features", "monitoring_config"}
    mc = doc["monitoring_config"]
    assert mc["evaluate_constraints"] == "Enabled" and mc["datatype_check_threshold"] == 1.0
    dc = mc["distribution_constraints"]
    assert dc["perform_comparison"] == "Enabled" and dc["comparison_threshold"] == 0.1
    features = {f["name"]: f for f in doc["features"]}
    assert features["policy_state"]["string_constraints"]["domains"] == sorted(
        ["CA", "WA", "AZ", "OR", "NV", "ID"]
    )
    assert features["customer_age"]["num_constraints"]["is_non_negative"] is True
    assert features["customer_age"]["completeness"] == 1.0
    assert "upper_bound" in features["customer_age"]["num_constraints"]  # a hard limit: the oldest age recurs
    assert "upper_bound" not in features["injury_claim"]["num_constraints"]  # a heavy tail: no bound


def test_a_managed_service_constraints_file_is_read_as_is(tmp_path: Path) -> None:
    managed = {
        "version": 0.0,
        "features": [
            {
                "name": "x",
                "inferred_type": "Fractional",
                "completeness": 1.0,
                "num_constraints": {"is_non_negative": True},
            },
            {
                "name": "s",
                "inferred_type": "String",
                "completeness": 1.0,
                "string_constraints": {"domains": ["a", "b"]},
                "monitoringConfigOverrides": {},
            },
        ],
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 0.1,
            "domain_content_threshold": 0.1,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": 0.1,
                "categorical_drift_method": "LInfinity",
            },
        },
    }
    path = tmp_path / "constraints.json"
    path.write_text(json.dumps(managed, indent=2))
    cons = load_constraints(path)
    assert cons.monitoring_config.distribution_constraints.comparison_method == "Robust"
    assert cons.to_json()["features"][0] == managed["features"][0] | {"monitoringConfigOverrides": {}}
    assert cons.to_json()["features"][1] == managed["features"][1]


# -- hand edits ----------------------------------------------------------------------------------------
def test_hand_edited_constraints_are_honoured(baseline_dir: Path, tmp_path: Path, make_claims, score) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "edited"
    folder.mkdir()
    for f in baseline_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    doc = json.loads((folder / "constraints.json").read_text())
    for f in doc["features"]:
        if f["name"] == "policy_state":
            f["string_constraints"]["domains"].append("UT")  # the new state is expected now
            f["monitoringConfigOverrides"] = {"perform_comparison": "Disabled"}
        if f["name"] == "customer_age":
            f["num_constraints"]["upper_bound"] = 50.0
    (folder / "constraints.json").write_text(json.dumps(doc, indent=2))
    from tideml.datasets.drift import AutoclaimsDrift

    claims = make_claims(2000, 401, AutoclaimsDrift(new_state="UT", new_state_share=0.3, seed=2)).drop(
        "fraud"
    )
    result = run_checks(load_baseline(folder), claims.with_columns(pl.Series("probability", score(claims))))
    assert {(v.constraint_check_type, v.subject) for v in result.violations} == {
        ("range_check", "customer_age")
    }
    assert next(d for d in result.drift if d.name == "policy_state").note == "comparison disabled"


# -- malformed constraint files ------------------------------------------------------------------------
def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "constraints.json"
    path.write_text(
        '{\n  "version": 0.0,\n  "features": [\n    {"name": "x" "inferred_type": "String"}\n  ]\n}\n'
    )
    with pytest.raises(ValidationError) as info:
        load_constraints(path)
    text = str(info.value)
    assert str(path) in text and "line 4" in text


def test_a_bad_value_names_the_file_line_and_field(baseline_dir: Path, tmp_path: Path) -> None:
    lines = (baseline_dir / "constraints.json").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if '"completeness"' in line)
    lines[index] = lines[index].replace("1.0", "1.7")
    path = tmp_path / "constraints.json"
    path.write_text("\n".join(lines))
    with pytest.raises(ValidationError) as info:
        load_constraints(path)
    err = info.value
    assert err.obj == f"{path}:{index + 1}"
    assert err.field == "features[0].completeness"
    assert "less than or equal to 1" in err.message


def test_a_misspelt_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "constraints.json"
    path.write_text(
        json.dumps(
            {"version": 0, "features": [{"name": "x", "inferred_type": "String", "completness": 0.9}]},
            indent=2,
        )
    )
    with pytest.raises(ValidationError) as info:
        load_constraints(path)
    assert info.value.field == "features[0].completness"
    assert info.value.obj == f"{path}:7"


def test_an_unknown_drift_method_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "constraints.json"
    doc = {
        "features": [],
        "monitoring_config": {"distribution_constraints": {"comparison_method": "Hellinger"}},
    }
    path.write_text(json.dumps(doc, indent=1))
    with pytest.raises(ValidationError) as info:
        load_constraints(path)
    assert info.value.field == "monitoring_config.distribution_constraints.comparison_method"


def test_malformed_statistics_name_the_field(baseline_dir: Path, tmp_path: Path) -> None:
    doc = json.loads((baseline_dir / "statistics.json").read_text())
    doc["features"][2]["numerical_statistics"]["common"]["num_present"] = -4
    path = tmp_path / "statistics.json"
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(ValidationError) as info:
        load_statistics(path)
    assert info.value.field == "features[2].numerical_statistics.common.num_present"
    assert str(path) in (info.value.obj or "")
    with pytest.raises(NotFound):
        load_statistics(tmp_path / "missing.json")


def test_a_baseline_folder_without_statistics_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "constraints.json").write_text('{"features": []}')
    with pytest.raises(NotFound, match=r"statistics\.json"):
        load_baseline(tmp_path)


# -- capture files -------------------------------------------------------------------------------------
def _record(i: int) -> dict[str, object]:
    return {
        "inference_id": f"r{i}",
        "time": f"2026-03-01T10:00:{i:02d}Z",
        "x": float(i),
        "s": "a",
        "probability": 0.1,
    }


def test_a_malformed_capture_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    lines = [json.dumps(_record(i)) for i in range(5)]
    lines[2] = lines[2][:-5]  # truncated in the middle of the file
    path.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    with pytest.raises(ValidationError) as info:
        read_window(tmp_path)
    assert info.value.obj == str(path) and info.value.field == "line 3"
    assert path.read_bytes() == before  # never modified


def test_a_type_change_in_a_capture_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    records = [_record(i) for i in range(4)]
    records[3]["x"] = {"nested": True}
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(ValidationError) as info:
        read_window(path)
    assert info.value.field == "line 4" and "'x'" in info.value.message


def test_a_line_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text(json.dumps(_record(0)) + "\n[1, 2]\n")
    with pytest.raises(ValidationError) as info:
        read_window(path)
    assert info.value.field == "line 2"


def test_an_unterminated_last_line_is_a_record_being_written(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text(
        json.dumps(_record(0)) + "\n" + json.dumps(_record(1)) + "\n" + json.dumps(_record(2))[:20]
    )
    window = read_window(path)
    assert window.rows == 2 and "unterminated" in window.notes[0]


def test_a_corrupt_parquet_capture_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "capture.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ValidationError) as info:
        read_window(tmp_path)
    assert info.value.obj == str(path)


def test_bad_times_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    records = [_record(i) for i in range(3)]
    records[1]["time"] = "yesterday"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(ValidationError) as info:
        read_window(path)
    assert "row 2" in info.value.message and info.value.field == "time"


def test_serving_capture_files_are_read_one_row_per_record(tmp_path: Path) -> None:
    for fmt in ("jsonl", "parquet"):
        folder = tmp_path / fmt
        writer = CaptureWriter(folder, fmt=fmt)
        ids = []
        for i in range(6):
            n = 1 if i % 2 == 0 else 3
            iid = uuid.uuid4().hex
            ids.append((iid, n))
            writer.put(
                {
                    "inference_id": iid,
                    "time": f"2026-03-01T10:00:0{i}.000000Z",
                    "endpoint": "fraud",
                    "variant": "a" if i != 5 else "b",
                    "model_version": "fraud/1",
                    "shadow": i == 4,
                    "input": [{"policy_id": i}] * n,
                    "features": {"names": ["x", "y"], "rows": [[float(i), float(j)] for j in range(n)]},
                    "output": [
                        {
                            "probability": 0.1 * i,
                            "decision": 0,
                            "threshold": 0.5,
                            "reasons": [{"feature": "x", "value": 0.1}],
                        }
                    ]
                    * n,
                }
            )
        writer.flush()
        writer.close()
        window = read_window(folder)
        frame = window.frame.sort("time", "y")
        assert frame.height == 1 + 3 + 1 + 3 + 3  # the shadow event is left out
        assert set(frame.columns) >= {"inference_id", "time", "x", "y", "probability", "variant"}
        batch_id = ids[1][0]
        assert frame.filter(pl.col("x") == 1.0)["inference_id"].to_list() == [
            f"{batch_id}/0",
            f"{batch_id}/1",
            f"{batch_id}/2",
        ]
        assert frame.filter(pl.col("x") == 0.0)["inference_id"].to_list() == [ids[0][0]]
        assert frame["time"].dtype == pl.Datetime("us", "UTC")
        from tideml.monitor import CaptureFormat

        only_b = read_window(folder, fmt=CaptureFormat(variant="b")).frame
        assert only_b.height == 3


def test_managed_capture_records_are_read(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    rec = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "application/json",
                "mode": "INPUT",
                "data": json.dumps({"x": 1.5, "s": "a"}),
                "encoding": "JSON",
            },
            "endpointOutput": {
                "observedContentType": "text/csv",
                "mode": "OUTPUT",
                "data": "0.25",
                "encoding": "CSV",
            },
        },
        "eventMetadata": {"eventId": "e1", "inferenceId": "i1", "inferenceTime": "2026-03-01T10:00:00Z"},
        "eventVersion": "0",
    }
    path.write_text(json.dumps(rec) + "\n")
    frame = read_window(path).frame
    row = frame.row(0, named=True)
    assert row["inference_id"] == "i1" and row["x"] == 1.5 and row["s"] == "a" and row["probability"] == 0.25


def test_a_missing_capture_source_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        read_window(tmp_path / "nowhere")


def test_a_serving_capture_window_checks_cleanly_against_its_baseline(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    train = pl.DataFrame({"x": rng.normal(size=3000), "y": rng.integers(0, 4, 3000).astype(float)})
    train = train.with_columns(probability=1 / (1 + np.exp(-train["x"].to_numpy())))
    baseline = suggest_baseline(train, prediction_column="probability")
    writer = CaptureWriter(tmp_path / "capture")
    for i in range(400):
        x, y = float(rng.normal()), float(rng.integers(0, 4))
        writer.put(
            {
                "inference_id": f"r{i}",
                "time": "2026-03-01T10:00:00.000000Z",
                "endpoint": "fraud",
                "variant": "a",
                "model_version": "fraud/1",
                "shadow": False,
                "input": [{"policy_id": i}],
                "features": {"names": ["x", "y"], "rows": [[x, y]]},
                "output": [{"probability": 1 / (1 + np.exp(-x)), "decision": 0, "threshold": 0.5}],
            }
        )
    writer.flush()
    writer.close()
    result = run_checks(baseline, tmp_path / "capture")
    assert result.rows == 400 and result.violations == []
    assert {d.name for d in result.drift} == {"x", "y", "probability"}
