"""Model quality with late labels: the join on inference id, and AUC/F1 equal to scikit-learn's on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from tideml.monitor import (
    auc_score,
    binary_classification_metrics,
    evaluate_model_quality,
    join_labels,
    read_labels,
    run_checks,
    suggest_baseline,
)
from tideml.monitor.quality import ModelQualityConstraints, suggest_model_quality_constraints


def _window(n: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(np.int64)
    p = np.clip(rng.normal(0.2 + 0.25 * y, 0.15), 0, 1).round(3)  # rounded: ties are exercised
    ids = [f"inf-{i:05d}" for i in range(n)]
    return pl.DataFrame({"inference_id": ids, "probability": p, "x": rng.normal(size=n)}), y


def test_late_labels_joined_on_inference_id_give_correct_auc_and_f1() -> None:
    window, y = _window(4000, 1)
    rng = np.random.default_rng(2)
    # labels arrive late, shuffled, for 70% of requests, plus labels of requests outside the window,
    # and one request whose label was corrected (the last label wins)
    keep = rng.permutation(4000)[:2800]
    labels = pl.DataFrame({"inference_id": window["inference_id"].gather(keep), "label": y[keep]})
    stray = pl.DataFrame({"inference_id": [f"other-{i}" for i in range(300)], "label": [1] * 300})
    first = int(keep[0])
    corrected = pl.DataFrame({"inference_id": [window["inference_id"][first]], "label": [1 - int(y[first])]})
    all_labels = pl.concat([pl.concat([stray, labels]).sample(fraction=1.0, shuffle=True, seed=3), corrected])
    result = evaluate_model_quality(
        window,
        all_labels,
        constraints=None,
        id_column="inference_id",
        label_column="label",
        prediction_column="probability",
        threshold=0.3,
    )
    # the oracle: join by hand with pandas
    truth = dict(zip(labels["inference_id"].to_list(), labels["label"].to_list(), strict=True))
    truth[window["inference_id"][first]] = 1 - int(y[first])
    pdf = window.to_pandas()
    mask = pdf["inference_id"].isin(truth)
    yy = pdf.loc[mask, "inference_id"].map(truth).to_numpy()
    pp = pdf.loc[mask, "probability"].to_numpy()
    assert result.join is not None
    assert result.join.matched == 2800 and result.join.labels_without_capture == 300
    assert result.join.captures_without_label == 1200
    assert result.metric("auc") == pytest.approx(roc_auc_score(yy, pp), abs=1e-12)
    assert result.metric("f1") == pytest.approx(f1_score(yy, pp >= 0.3), abs=1e-12)
    assert result.metric("precision") == pytest.approx(precision_score(yy, pp >= 0.3), abs=1e-12)
    assert result.metric("recall") == pytest.approx(recall_score(yy, pp >= 0.3), abs=1e-12)
    assert result.metric("pr_auc") == pytest.approx(average_precision_score(yy, pp), abs=1e-12)
    cm = result.statistics["binary_classification_metrics"]["confusion_matrix"]  # type: ignore[index]
    assert cm["1"]["1"] == int(((pp >= 0.3) & (yy == 1)).sum())


def test_a_wrong_join_would_be_caught() -> None:
    window, y = _window(2000, 4)
    labels = pl.DataFrame({"inference_id": window["inference_id"], "label": y})
    good = evaluate_model_quality(
        window,
        labels,
        constraints=None,
        id_column="inference_id",
        label_column="label",
        prediction_column="probability",
        threshold=0.3,
    )
    shuffled = labels.with_columns(pl.col("label").shuffle(seed=1))
    bad = evaluate_model_quality(
        window,
        shuffled,
        constraints=None,
        id_column="inference_id",
        label_column="label",
        prediction_column="probability",
        threshold=0.3,
    )
    assert good.metric("auc") > 0.8 > 0.6 > bad.metric("auc")  # type: ignore[operator]


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(10, 400))
        y = rng.random(n) < rng.uniform(0.05, 0.6)
        if y.all() or not y.any():
            continue
        s = rng.integers(0, 8, n).astype(float)
        assert auc_score(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc_score([1, 1], [0.2, 0.3]) is None


def test_managed_ground_truth_layout_is_read(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    rows = [
        {
            "groundTruthData": {"data": "1", "encoding": "CSV"},
            "eventMetadata": {"eventId": "a"},
            "eventVersion": "0",
        },
        {
            "groundTruthData": {"data": "0", "encoding": "CSV"},
            "eventMetadata": {"eventId": "b"},
            "eventVersion": "0",
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    labels = read_labels(path).frame
    assert labels.to_dict(as_series=False) == {"inference_id": ["a", "b"], "label": [1.0, 0.0]}


def test_too_few_labels_is_a_note_not_a_violation() -> None:
    window, y = _window(500, 6)
    labels = pl.DataFrame({"inference_id": window["inference_id"].head(10), "label": y[:10]})
    cons = ModelQualityConstraints.model_validate(
        {
            "binary_classification_constraints": {
                "auc": {"threshold": 0.99, "comparison_operator": "LessThanThreshold"}
            }
        }
    )
    result = evaluate_model_quality(
        window,
        labels,
        constraints=cons,
        id_column="inference_id",
        label_column="label",
        prediction_column="probability",
        threshold=0.3,
    )
    assert result.violations == [] and result.statistics is None
    assert "model quality skipped" in result.notes[0]


def test_quality_constraints_are_checked_in_the_managed_wording() -> None:
    window, y = _window(3000, 7)
    labels = pl.DataFrame({"inference_id": window["inference_id"], "label": y})
    cons = ModelQualityConstraints.model_validate(
        {
            "version": 0.0,
            "binary_classification_constraints": {
                "auc": {"threshold": 0.999, "comparison_operator": "LessThanThreshold"},
                "recall": {"threshold": 0.0, "comparison_operator": "LessThanThreshold"},
                "false_positive_rate": {"threshold": 0.01, "comparison_operator": "GreaterThanThreshold"},
            },
        }
    )
    result = evaluate_model_quality(
        window,
        labels,
        constraints=cons,
        id_column="inference_id",
        label_column="label",
        prediction_column="probability",
        threshold=0.3,
    )
    got = {v.metric_name: v.to_json() for v in result.violations}
    assert set(got) == {"auc", "false_positive_rate"}
    assert got["auc"]["constraint_check_type"] == "LessThanThreshold"
    assert got["auc"]["description"].startswith("Metric auc with ")
    assert "was LessThanThreshold '0.999'" in got["auc"]["description"]
    assert set(got["auc"]) == {"metric_name", "constraint_check_type", "description"}


def test_suggested_quality_constraints_leave_room_for_noise() -> None:
    window, y = _window(20_000, 8)
    metrics = binary_classification_metrics(y, window["probability"].to_numpy(), threshold=0.3)
    cons = suggest_model_quality_constraints(metrics)
    auc = metrics["auc"]["value"]
    assert cons.binary_classification_constraints["auc"].threshold == pytest.approx(round(auc - 0.05, 4))
    f1 = metrics["f1"]["value"]
    assert cons.binary_classification_constraints["f1"].threshold == pytest.approx(
        round(f1 * 0.75, 4), abs=1e-4
    )
    # fresh windows of the same model pass
    for seed in range(9, 14):
        w, yy = _window(3000, seed)
        res = evaluate_model_quality(
            w,
            pl.DataFrame({"inference_id": w["inference_id"], "label": yy}),
            constraints=cons,
            id_column="inference_id",
            label_column="label",
            prediction_column="probability",
            threshold=0.3,
        )
        assert res.violations == []


def test_bootstrap_deviation_is_plausible() -> None:
    window, y = _window(5000, 15)
    m = binary_classification_metrics(y, window["probability"].to_numpy(), threshold=0.3)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    a = m["auc"]["value"]
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)  # Hanley & McNeil
    hanley = np.sqrt(
        (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    )
    assert 0.5 * hanley < m["auc"]["standard_deviation"] < 2 * hanley


def test_join_reports_duplicates_and_missing_columns() -> None:
    window = pl.DataFrame({"inference_id": ["a", "a", "b"], "probability": [0.1, 0.9, 0.5]})
    labels = pl.DataFrame({"inference_id": ["a", "b"], "label": [1, 0]})
    joined, summary = join_labels(
        window, labels, id_column="inference_id", label_column="label", prediction_column="probability"
    )
    assert summary.duplicate_captures == 1
    assert joined.filter(pl.col("inference_id") == "a")["probability"].item() == 0.9  # the last capture wins
    from tideml.errors import ValidationError

    with pytest.raises(ValidationError, match="probability"):
        join_labels(
            window.drop("probability"),
            labels,
            id_column="inference_id",
            label_column="label",
            prediction_column="probability",
        )


def test_labels_with_text_that_is_not_a_number_name_the_record(tmp_path: Path) -> None:
    from tideml.errors import ValidationError

    path = tmp_path / "labels.csv"
    path.write_text("inference_id,label\na,1\nb,maybe\n")
    with pytest.raises(ValidationError) as info:
        read_labels(path)
    assert f"{path}:2" in str(info.value) and "'maybe'" in str(info.value)


def test_run_checks_uses_labels_and_the_baseline_threshold(reference, make_claims, score, capture_of) -> None:  # type: ignore[no-untyped-def]
    base = suggest_baseline(reference, label_column="fraud", prediction_column="probability", threshold=0.07)
    claims = make_claims(3000, 301)
    window, labels = capture_of(claims, score(claims), "q")
    result = run_checks(base, window, labels=labels)
    assert result.model_quality is not None and result.model_quality.threshold == 0.07
    p = score(claims)
    assert result.model_quality.metric("f1") == pytest.approx(f1_score(claims["fraud"].to_numpy(), p >= 0.07))
