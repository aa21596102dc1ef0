"""Every metric on a small case computed by hand from the formulas (reference §2, §3), plus the
division rules (0/0, x/0, inf - inf) in both modes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tideml.clarify import Facet, bias_report
from tideml.errors import ValidationError

# facet a: 6 rows, facet d: 4 rows.  (y, ŷ, g)
A_ROWS = [(1, 1, "x"), (1, 1, "x"), (1, 0, "y"), (0, 1, "y"), (0, 0, "y"), (0, 0, "x")]
D_ROWS = [(1, 1, "x"), (0, 1, "y"), (0, 0, "y"), (0, 0, "x")]


def small_frame() -> pd.DataFrame:
    rows = [(0, *r) for r in A_ROWS] + [(1, *r) for r in D_ROWS]
    return pd.DataFrame(rows, columns=["f", "y", "yhat", "g"])


def values(result: Any, stage: str = "pre") -> dict[str, Any]:
    block = result.pre_training if stage == "pre" else result.post_training
    entry = block.facets["f"][0]
    return {m.name: (m.value, m.error) for m in entry.metrics}


@pytest.fixture
def small() -> Any:
    return bias_report(
        small_frame(),
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [1])],
        group_variable="g",
        predicted_label="yhat",
    )


def test_pre_training_metrics_by_hand(small: Any) -> None:
    v = values(small, "pre")
    # n_a = 6, n_d = 4; q_a = 3/6, q_d = 1/4; P_a = [1/2, 1/2], P_d = [3/4, 1/4]
    assert v["CI"][0] == pytest.approx((6 - 4) / 10)
    assert v["DPL"][0] == pytest.approx(0.5 - 0.25)
    assert v["KL"][0] == pytest.approx(0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))
    m = [0.625, 0.375]
    kl_a = 0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])
    kl_d = 0.75 * math.log(0.75 / m[0]) + 0.25 * math.log(0.25 / m[1])
    assert v["JS"][0] == pytest.approx(0.5 * (kl_a + kl_d))
    assert v["LP"][0] == pytest.approx(math.sqrt(0.25**2 + 0.25**2))
    assert v["TVD"][0] == pytest.approx(0.5 * (0.25 + 0.25))
    assert v["KS"][0] == pytest.approx(0.25)
    # group x: A = 1/3, D = 1/2; group y: A = 0/1, D = 2/4; both groups have 5 rows
    assert v["CDDL"][0] == pytest.approx((5 * (1 / 2 - 1 / 3) + 5 * (2 / 4 - 0)) / 10)


def test_post_training_metrics_by_hand(small: Any) -> None:
    v = values(small, "post")
    # a: TP 2, FN 1, FP 1, TN 2;  d: TP 1, FN 0, FP 1, TN 2
    assert v["DPPL"][0] == pytest.approx(3 / 6 - 2 / 4)
    assert v["DI"][0] == pytest.approx((2 / 4) / (3 / 6))
    assert v["DCA"][0] == pytest.approx(3 / 3 - 1 / 2)
    assert v["DCR"][0] == pytest.approx(3 / 2 - 3 / 3)
    assert v["RD"][0] == pytest.approx(2 / 3 - 1 / 1)
    assert v["SD"][0] == pytest.approx(2 / 3 - 2 / 3)
    assert v["DAR"][0] == pytest.approx(2 / 3 - 1 / 2)
    assert v["DRR"][0] == pytest.approx(2 / 2 - 2 / 3)
    assert v["AD"][0] == pytest.approx(4 / 6 - 3 / 4)
    assert v["TE"][0] == pytest.approx(0 / 1 - 1 / 1)
    # GE over all 10 rows: b = 1 for 7 correct rows, 2 for 2 false positives, 0 for 1 false negative
    mu = (7 * 1 + 2 * 2 + 0) / 10
    assert v["GE"][0] == pytest.approx((7 * (1 / mu) ** 2 + 2 * (2 / mu) ** 2 + 0 - 10) / (2 * 10))
    # predictions: group x: A = 1/3, D = 1/2; group y: A = 1/2, D = 1/3
    assert v["CDDPL"][0] == pytest.approx((5 * (1 / 2 - 1 / 3) + 5 * (1 / 3 - 1 / 2)) / 10)


def test_cdd_without_group_variable_is_demographic_disparity() -> None:
    r = bias_report(
        small_frame(),
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [1])],
        pre_training=["CDDL"],
        compat="smclarify",
    )
    assert values(r)["CDDL"] == (None, "Group variable is empty or not provided")
    from tideml.clarify._pair import Pair
    from tideml.clarify.pretraining import CDDL

    cells_d = np.array([[[[2, 1], [0, 1]]]])  # one group; [y][ŷ]: d has TN 2, FP 1, FN 0, TP 1
    cells_total = np.array([[[[4, 2], [1, 3]]]])
    q = CDDL(Pair.from_cells(cells_d, cells_total, np.array([False, True])))
    # D = n_d(0)/n(0) = 3/6, A = n_d(1)/n(1) = 1/4
    assert q.value[0] == pytest.approx(3 / 6 - 1 / 4)


def test_flip_test_by_hand() -> None:
    # a: x = 0, 1, 2 predicted positive; 10, 11, 12 predicted negative.  n_a = 6 ≤ 9, so k = 1.
    # (categorical dtypes, so that smclarify's uniqueness heuristic does not call the tiny 0/1 columns
    # continuous in compat mode)
    # d: x = 0.1 (ŷ 0, neighbour 1: F+), 10.1 (ŷ 0, neighbour 0), 11.2 (0, 0), 1.9 (1, 1)
    frame = pd.DataFrame(
        {
            "f": [0] * 6 + [1] * 4,
            "x": [0, 1, 2, 10, 11, 12, 0.1, 10.1, 11.2, 1.9],
            "y": [1, 1, 1, 0, 0, 0, 1, 0, 0, 1],
            "yhat": [1, 1, 1, 0, 0, 0, 0, 0, 0, 1],
        }
    ).astype({"f": "category", "y": "category", "yhat": "category"})
    kwargs: dict[str, Any] = dict(
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [1])],
        predicted_label="yhat",
        pre_training=None,
        post_training=["FT"],
    )
    assert values(bias_report(frame, **kwargs), "post")["FT"][0] == pytest.approx((1 - 0) / 4)
    assert values(bias_report(frame, compat="smclarify", **kwargs), "post")["FT"][0] == pytest.approx(-0.25)


def _two_groups(a: list[tuple[int, int]], d: list[tuple[int, int]]) -> pd.DataFrame:
    rows = [(0, y, p) for y, p in a] + [(1, y, p) for y, p in d]
    # categorical dtypes keep smclarify's uniqueness heuristic (compat mode) from calling them continuous
    return pd.DataFrame(rows, columns=["f", "y", "yhat"]).astype("category")


def _post(frame: pd.DataFrame, codes: list[str], compat: str | None = None) -> dict[str, Any]:
    r = bias_report(
        frame,
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [1])],
        predicted_label="yhat",
        pre_training=None,
        post_training=codes,
        compat=compat,
    )
    return values(r, "post")


def test_x_over_zero_is_infinity_and_written_as_a_string() -> None:
    # d: one false negative, no false positive: FN_d / FP_d = 1/0; a: FN 1, FP 1
    frame = _two_groups([(1, 0), (0, 1), (1, 1)], [(1, 0), (0, 0)])
    te = _post(frame, ["TE"])["TE"]
    assert te == (math.inf, None)
    r = bias_report(
        frame,
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [1])],
        predicted_label="yhat",
        pre_training=None,
        post_training=["TE"],
    )
    assert (
        r.analysis_json()["post_training_bias_metrics"]["facets"]["f"][0]["metrics"][0]["value"] == "Infinity"
    )


def test_zero_over_zero_is_undefined_by_default_and_zero_in_compat() -> None:
    # no false positive and no false negative anywhere in d: FN_d / FP_d = 0/0
    frame = _two_groups([(1, 0), (0, 1), (1, 1)], [(1, 1), (0, 0)])
    assert _post(frame, ["TE"])["TE"] == (None, "undefined: 0/0")
    assert _post(frame, ["TE"], "smclarify")["TE"] == (pytest.approx(0 - 1.0), None)


def test_infinity_minus_infinity() -> None:
    # nobody is predicted positive but both groups have positive labels: c_a = c_d = +inf
    frame = _two_groups([(1, 0), (0, 0)], [(1, 0), (1, 0), (0, 0)])
    assert _post(frame, ["DCA"])["DCA"] == (None, "undefined: Infinity - Infinity")
    assert _post(frame, ["DCA"], "smclarify")["DCA"] == (0.0, None)


def test_missing_outcome_kl_is_infinite_by_default_and_shared_support_in_compat() -> None:
    # d has no positive label: P_a = [1/2, 1/2], P_d = [1, 0]
    frame = _two_groups([(1, 1), (0, 0)], [(0, 0), (0, 1)])
    kwargs: dict[str, Any] = dict(
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [1])],
        pre_training=["KL", "JS", "LP", "TVD", "KS"],
    )
    default = values(bias_report(frame, **kwargs))
    assert default["KL"] == (math.inf, None)
    m = [0.75, 0.25]
    js = 0.5 * ((0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])) + 1.0 * math.log(1.0 / m[0]))
    assert default["JS"][0] == pytest.approx(js)
    assert default["TVD"][0] == pytest.approx(0.5)
    assert default["LP"][0] == pytest.approx(math.sqrt(0.5))
    compat = values(bias_report(frame, compat="smclarify", **kwargs))
    # smclarify keeps only the outcome present in both (negative) and does not renormalise
    assert compat["KL"][0] == pytest.approx(0.5 * math.log(0.5 / 1.0))
    assert compat["KL"][0] < 0
    assert compat["TVD"][0] == pytest.approx(0.5 * 0.5)
    assert compat["KS"][0] == pytest.approx(0.5)


def test_continuous_facet_threshold_and_interval_name() -> None:
    frame = pd.DataFrame({"age": [20, 30, 31, 45, 70, 25], "y": [1, 0, 1, 1, 0, 0]})
    r = bias_report(frame, label="y", label_values_or_threshold=[1], facets=[Facet("age", 30)])
    entry = r.pre_training.facets["age"][0]  # type: ignore[union-attr]
    assert entry.value_or_threshold == "(30, 70]"
    assert (entry.n_d, entry.n_a) == (3, 3)  # strictly greater than 30
    assert entry.metric("CI").value == 0.0


def test_label_threshold_on_a_continuous_label() -> None:
    frame = pd.DataFrame({"f": [0, 0, 1, 1], "score": [0.2, 0.9, 0.4, 0.7]})
    r = bias_report(frame, label="score", label_values_or_threshold=0.5, facets=[Facet("f", [1])])
    assert r.pre_training is not None
    assert r.pre_training.label_value_or_threshold == "(0.5, 0.9]"
    assert r.pre_training.facets["f"][0].metric("DPL").value == pytest.approx(0.5 - 0.5)


def test_one_vs_rest_gives_one_entry_per_value() -> None:
    frame = pd.DataFrame({"g": ["m", "f", "o", "f", "m", "m"], "y": [1, 0, 1, 1, 0, 1]})
    r = bias_report(frame, label="y", label_values_or_threshold=[1], facets=["g"], pre_training=["CI", "DPL"])
    entries = r.pre_training.facets["g"]  # type: ignore[union-attr]
    assert [e.value_or_threshold for e in entries] == ["f", "m", "o"]
    ci = {e.value_or_threshold: e.metric("CI").value for e in entries}
    assert ci == {"f": pytest.approx((4 - 2) / 6), "m": pytest.approx(0.0), "o": pytest.approx((5 - 1) / 6)}


def test_integer_label_value_is_a_value_not_a_threshold_on_small_frames() -> None:
    # smclarify's pitfall: on ≤ 40 rows a 0/1 label looks continuous and [1] means "label > 1"
    frame = pd.DataFrame({"f": pd.Categorical([0, 0, 1, 1]), "y": [1, 0, 1, 1]})
    kwargs: dict[str, Any] = dict(
        label="y", label_values_or_threshold=[1], facets=[Facet("f", [1])], pre_training=["DPL"]
    )
    assert values(bias_report(frame, **kwargs))["DPL"][0] == pytest.approx(0.5 - 1.0)
    assert values(bias_report(frame, compat="smclarify", **kwargs))["DPL"][0] == 0.0


def test_intersectional_facet() -> None:
    frame = pd.DataFrame(
        {
            "sex": ["F", "F", "M", "M", "F", "M"],
            "state": ["CA", "WA", "CA", "CA", "CA", "WA"],
            "y": [1, 0, 1, 1, 0, 0],
        }
    )
    r = bias_report(
        frame,
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet(("sex", "state"), [["F", "CA"]])],
        pre_training=["CI", "DPL"],
    )
    entry = r.pre_training.facets["sex & state"][0]  # type: ignore[union-attr]
    assert entry.value_or_threshold == "F & CA"
    assert (entry.n_d, entry.n_a) == (2, 4)
    assert entry.metric("DPL").value == pytest.approx(2 / 4 - 1 / 2)
    ovr = bias_report(
        frame, label="y", label_values_or_threshold=[1], facets=[Facet(("sex", "state"))], pre_training=["CI"]
    )
    names = [e.value_or_threshold for e in ovr.pre_training.facets["sex & state"]]  # type: ignore[union-attr]
    assert names == ["F & CA", "F & WA", "M & CA", "M & WA"]


def test_group_metric_requested_without_group_variable_is_a_clear_error() -> None:
    frame = small_frame()
    with pytest.raises(ValidationError) as err:
        bias_report(
            frame, label="y", label_values_or_threshold=[1], facets=[Facet("f", [1])], pre_training=["CDDL"]
        )
    assert err.value.field == "group_variable"
    assert "group_variable" in (err.value.fix or "")
    r = bias_report(
        frame, label="y", label_values_or_threshold=[1], facets=[Facet("f", [1])], pre_training="all"
    )
    assert "CDDL" not in values(r)
    assert any("CDDL" in n for n in r.notes)


def test_facet_value_matching_no_row_is_a_clear_error_by_default() -> None:
    with pytest.raises(ValidationError) as err:
        bias_report(small_frame(), label="y", label_values_or_threshold=[1], facets=[Facet("f", [7])])
    assert err.value.field == "value_or_threshold"
    r = bias_report(
        small_frame(),
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [7])],
        compat="smclarify",
        pre_training=["CI"],
    )
    assert values(r)["CI"] == (None, "Facet set is empty")


def test_unknown_metric_code_is_rejected() -> None:
    with pytest.raises(ValidationError, match="XYZ"):
        bias_report(
            small_frame(),
            label="y",
            label_values_or_threshold=[1],
            facets=[Facet("f", [1])],
            pre_training=["XYZ"],
        )


def test_scores_use_strictly_greater_than_threshold_and_note_the_default() -> None:
    frame = pd.DataFrame({"f": [0, 0, 1, 1], "y": [1, 0, 1, 0]})
    kwargs: dict[str, Any] = dict(
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [1])],
        pre_training=None,
        post_training=["DPPL"],
    )
    r = bias_report(frame, scores=[0.5, 0.6, 0.2, 0.9], probability_threshold=0.5, **kwargs)
    # predicted 1 only where score > 0.5: a = [0, 1], d = [0, 1]
    assert values(r, "post")["DPPL"][0] == pytest.approx(0.5 - 0.5)
    r = bias_report(frame, scores=[0.5, 0.6, 0.2, 0.9], **kwargs)
    assert r.probability_threshold == 0.5
    assert any("probability_threshold" in n for n in r.notes)


def test_performance_by_group_by_hand(small: Any) -> None:
    table = small.performance["f"]
    rows = {g.group: g for g in table.groups}
    a, d = rows["0"], rows["1"]
    assert (a.n, d.n) == (6, 4) and a.share == pytest.approx(0.6)
    # a: TP 2, FN 1, FP 1, TN 2;  d: TP 1, FN 0, FP 1, TN 2
    assert a.rates["recall"] == pytest.approx(2 / 3) and d.rates["recall"] == pytest.approx(1.0)
    assert a.rates["false_positive_rate"] == pytest.approx(1 / 3) and d.rates[
        "false_positive_rate"
    ] == pytest.approx(1 / 3)
    assert d.rates["selection_rate"] == pytest.approx(2 / 4) and d.rates["base_rate"] == pytest.approx(1 / 4)
    assert d.rates["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 0))
    assert table.summary["demographic_parity"]["difference"] == pytest.approx(0.0)
    assert table.summary["equalized_odds"]["difference"] == pytest.approx(1 - 2 / 3)
    assert table.overall.rates["accuracy"] == pytest.approx(7 / 10)


def test_metric_by_group_accepts_any_sklearn_metric() -> None:
    from sklearn.metrics import recall_score

    from tideml.clarify import metric_by_group

    out = metric_by_group(
        recall_score, [1, 1, 0, 1, 1, 0], [1, 0, 0, 1, 1, 1], ["a", "a", "a", "b", "b", "b"]
    )
    assert out["by_group"] == {"a": 0.5, "b": 1.0}
    assert out["difference"] == 0.5 and out["ratio"] == 0.5
    assert out["overall"] == pytest.approx(3 / 4)


def test_polars_input_gives_the_same_result(small: Any) -> None:
    import polars as pl

    r = bias_report(
        pl.from_pandas(small_frame()),
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [1])],
        group_variable="g",
        predicted_label="yhat",
    )
    assert r.analysis_json() == small.analysis_json()
