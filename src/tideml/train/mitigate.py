"""Bias mitigation, each method evaluated exactly like the unmitigated model, side by side.

Methods (all on the same entity split; only the training rows or the decision rule change):

- `none`: the unmitigated model.
- `smote`: the article's second model. SMOTE with the *facet* as its target synthesises rows of the
  under-represented facet until both facets are equally many; the label rides along as one more
  interpolated column and is rounded back to 0/1. This balances the facet, not the label.
- `smote_label_preserving`: SMOTE within each (facet, label) cell, raising each cell of the
  under-represented facet to the size of the other facet's cell; labels are never interpolated.
- `reweighing`: Kamiran-Calders weights w(g, y) = P(g) P(y) / P(g, y) on the training rows, which make
  facet and label independent in the weighted training data.
- `group_thresholds`: the unmitigated booster with one decision threshold per facet group, chosen on
  validation so that each group's flagged share equals the overall flagged share (`parity`), or so that
  each group's F1 is maximal (`max_f1`).

Fairness is reported as DPPL, the difference in predicted-positive proportions q'_a - q'_d with
"positive" = flagged as fraud, computed by `tideml.clarify` from the test decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
from imblearn.over_sampling import SMOTE
from pydantic import BaseModel, ConfigDict
from sklearn.neighbors import KDTree, NearestNeighbors

from tideml._progress import progress_bar
from tideml.errors import ValidationError
from tideml.train.data import ModelMatrix, as_polars, build_matrix, frame_fingerprint
from tideml.train.evaluate import choose_threshold
from tideml.train.model import GroupThresholds
from tideml.train.spec import ThresholdSpec, TrainSpec
from tideml.train.split import Split, entity_split
from tideml.train.trainer import TrainResult, fit_evaluate

__all__ = [
    "METHODS",
    "MitigationResult",
    "MitigationRow",
    "compare_mitigations",
    "group_thresholds_on_validation",
    "kamiran_calders_weights",
    "predicted_positive_rate_gap",
    "smote_facet",
]

Method = Literal["none", "smote", "smote_label_preserving", "reweighing", "group_thresholds"]
METHODS: tuple[Method, ...] = ("none", "smote", "smote_label_preserving", "reweighing", "group_thresholds")
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


# ----------------------------------------------------------------------------------------- methods
def smote_facet(
    X: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    in_facet: BoolArray,
    *,
    seed: int = 42,
    label_preserving: bool = False,
    facet_column: int | None = None,
    k_neighbors: int = 5,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], int]:
    """Oversample the under-represented facet; returns (X, y, synthetic row count), synthetic rows last.

    `label_preserving=False` is the article's call: SMOTE's target is the facet and the label is an
    interpolated feature (rounded back to 0/1). `label_preserving=True` oversamples each label class of
    the minority facet separately, so synthetic labels are exact. `facet_column`, if the facet is a
    feature, is set exactly on synthetic rows.
    """
    g = in_facet.astype(np.int64)
    minority = int(g.sum() <= (1 - g).sum())  # the facet value with fewer rows
    if label_preserving:
        cell = g * 2 + y  # (facet, label) cells; raise each minority-facet cell to its counterpart
        counts = {c: int((cell == c).sum()) for c in range(4)}
        strategy = {
            minority * 2 + label: max(counts[minority * 2 + label], counts[(1 - minority) * 2 + label])
            for label in (0, 1)
        }
        smallest = min(counts[c] for c in strategy)
        target, features = cell, X.astype(np.float64)
    else:
        strategy = {minority: int(max(g.sum(), (1 - g).sum()))}
        smallest = int((g == minority).sum())
        target, features = g, np.column_stack([X.astype(np.float64), y.astype(np.float64)])
    if smallest < 2:
        raise ValidationError(
            f"a facet cell has {smallest} row(s); SMOTE needs at least 2",
            obj="mitigation",
            field="smote",
            fix="use reweighing or group_thresholds, or more data",
        )
    k = min(k_neighbors, smallest - 1)
    sampler = SMOTE(
        sampling_strategy=strategy,
        random_state=seed,
        k_neighbors=_neighbour_search(
            features[target == max(strategy, key=lambda c: int((target == c).sum()))], k, seed
        ),
    )
    resampled, target_out = sampler.fit_resample(features, target)
    synthetic = resampled.shape[0] - X.shape[0]
    if label_preserving:
        X_out = resampled.astype(np.float32)
        y_out = (np.asarray(target_out) % 2).astype(np.int64)
    else:
        X_out = resampled[:, :-1].astype(np.float32)
        y_out = (resampled[:, -1] >= 0.5).astype(np.int64)
    if facet_column is not None and synthetic:  # every synthetic row belongs to the minority facet
        X_out[X.shape[0] :, facet_column] = X[g == minority, facet_column][0]
    return X_out, y_out, int(synthetic)


_PROBE_QUERIES = 64
_KD_TREE_MAX_SHARE = 0.02  # distance computations per query, as a share of the rows, to prefer the tree


def _neighbour_search(rows: npt.NDArray[np.float64], k: int, seed: int) -> NearestNeighbors:
    """An exact k-NN search for SMOTE: a KD-tree where it prunes well, scikit-learn's choice otherwise.

    The search is SMOTE's whole cost. scikit-learn picks brute force above 15 features, which is
    quadratic in the rows: 13 s for 180k auto-claims training rows (46 columns, mostly one-hot, so
    of low intrinsic dimension) where a KD-tree takes 2 s. On genuinely high-dimensional rows the
    tree visits everything and is 30x slower than brute force. So a KD-tree answers 64 sampled
    queries first and counts its distance computations: a count, not a timing, so the choice (and
    with it how ties between equidistant neighbours fall) is the same on every run.
    """
    if len(rows) <= 4 * _PROBE_QUERIES:
        return NearestNeighbors(n_neighbors=k + 1)
    tree = KDTree(rows)
    tree.query(rows[np.random.default_rng(seed).choice(len(rows), _PROBE_QUERIES, replace=False)], k=k + 1)
    share = tree.get_n_calls() / _PROBE_QUERIES / len(rows)
    return NearestNeighbors(n_neighbors=k + 1, algorithm="kd_tree" if share < _KD_TREE_MAX_SHARE else "auto")


def kamiran_calders_weights(y: npt.NDArray[np.int64], in_facet: BoolArray) -> FloatArray:
    """Reweighing (Kamiran & Calders 2012): w = P(g) P(y) / P(g, y) for each row's (group, label)."""
    weights = np.ones(y.shape, dtype=np.float64)
    n = y.size
    for g in (False, True):
        for label in (0, 1):
            cell = (in_facet == g) & (y == label)
            count = int(cell.sum())
            if count:
                weights[cell] = (int((in_facet == g).sum()) * int((y == label).sum())) / (n * count)
    return weights


def group_thresholds_on_validation(
    y: npt.NDArray[np.int64],
    p: FloatArray,
    in_facet: BoolArray,
    global_threshold: float,
    *,
    objective: Literal["parity", "max_f1"] = "parity",
) -> tuple[float, float]:
    """(threshold of facet d, threshold of facet a), chosen on validation scores."""
    if objective == "max_f1":
        out: list[float] = []
        for member in (in_facet, ~in_facet):
            if np.unique(y[member]).size < 2:
                out.append(global_threshold)
            else:
                out.append(choose_threshold(y[member], p[member], ThresholdSpec()).value)
        return out[0], out[1]
    target = float((p >= global_threshold).mean())
    out = []
    for member in (in_facet, ~in_facet):
        scores = np.sort(p[member])[::-1]
        k = round(target * scores.size)
        out.append(float(scores[k - 1]) if k >= 1 else float(min(1.0, np.nextafter(scores[0], np.inf))))
    return out[0], out[1]


def predicted_positive_rate_gap(
    labels: npt.NDArray[np.int64], flagged: BoolArray, in_facet: BoolArray
) -> tuple[float, float, float]:
    """(flagged share of facet d, of facet a, DPPL = q'_a - q'_d), DPPL computed by tideml.clarify."""
    from tideml.clarify import Facet, bias_report

    frame = pl.DataFrame({"label": labels.astype(np.int64), "facet": in_facet.astype(np.int64)})
    result = bias_report(
        frame,
        label="label",
        label_values_or_threshold=[1],
        facets=[Facet("facet", [1])],
        predicted_label=flagged.astype(np.int64),
        pre_training=[],
        post_training=["DPPL"],
    )
    assert result.post_training is not None
    dppl = result.post_training.facets["facet"][0].metric("DPPL").value
    rate_d = float(flagged[in_facet].mean()) if in_facet.any() else float("nan")
    rate_a = float(flagged[~in_facet].mean()) if (~in_facet).any() else float("nan")
    return rate_d, rate_a, float("nan") if dppl is None else float(dppl)


# ----------------------------------------------------------------------------------------- comparison
class MitigationRow(BaseModel):
    """One method's test numbers: quality and the facet gap in flagged share."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str
    test_auc: float
    test_auc_ci95: tuple[float | None, float | None]
    test_pr_auc: float
    f1: float
    precision: float
    recall: float
    threshold: float
    facet_threshold: float | None = None
    other_threshold: float | None = None
    flagged_rate_facet: float
    flagged_rate_other: float
    dppl: float
    recall_facet: float
    recall_other: float
    training_rows: int
    synthetic_rows: int = 0


@dataclass
class MitigationResult:
    """The comparison table and the full result (model, evaluation) of every method."""

    facet: str
    facet_value: Any
    rows: list[MitigationRow]
    results: dict[str, TrainResult] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        return [r.model_dump() for r in self.rows]

    def summary(self) -> dict[str, Any]:
        return {"facet": self.facet, "facet_value": self.facet_value, "methods": self.table()}


def _facet_mask(frame: pl.DataFrame, facet: str, value: Any) -> BoolArray:
    if facet not in frame.columns:
        raise ValidationError(
            "the facet column is missing",
            obj="mitigation",
            field=facet,
            fix="name a column of the dataset, e.g. customer_gender_female",
        )
    column = frame[facet]
    mask: BoolArray = np.asarray((column == value).fill_null(False).to_numpy(), dtype=bool)
    if mask.all() or not mask.any():
        raise ValidationError(
            f"no row (or every row) has {facet} == {value!r}",
            obj="mitigation",
            field="facet_value",
            fix="pass the value that marks the disadvantaged group (facet d), e.g. 1",
        )
    return mask


def _row(
    method: str,
    result: TrainResult,
    matrix: ModelMatrix,
    split: Split,
    in_facet: BoolArray,
    test_thresholds: float | FloatArray,
    synthetic: int,
) -> MitigationRow:
    t = result.evaluation.test
    y_test = matrix.y[split.test]
    flagged = result.test_scores >= np.asarray(test_thresholds)
    facet_test = in_facet[split.test]
    rate_d, rate_a, dppl = predicted_positive_rate_gap(y_test, flagged, facet_test)

    def recall(member: BoolArray) -> float:
        positives = member & (y_test == 1)
        return float(flagged[positives].mean()) if positives.any() else float("nan")

    groups = result.model.spec.group_thresholds
    return MitigationRow(
        method=method,
        test_auc=t.roc_auc,
        test_auc_ci95=(t.roc_auc_ci_low, t.roc_auc_ci_high),
        test_pr_auc=t.pr_auc,
        f1=t.f1,
        precision=t.precision,
        recall=t.recall,
        threshold=result.evaluation.threshold.value,
        facet_threshold=None if groups is None else next(iter(groups.thresholds.values())),
        other_threshold=None if groups is None else groups.default,
        flagged_rate_facet=rate_d,
        flagged_rate_other=rate_a,
        dppl=dppl,
        recall_facet=recall(facet_test),
        recall_other=recall(~facet_test),
        training_rows=int(result.model.spec.training["training_rows"]),
        synthetic_rows=synthetic,
    )


def compare_mitigations(
    data: Any,
    spec: TrainSpec | dict[str, Any] | None = None,
    *,
    facet: str = "customer_gender_female",
    facet_value: Any = 1,
    methods: Sequence[str] = METHODS,
    group_objective: Literal["parity", "max_f1"] = "parity",
    smote_seed: int = 42,
    dataset_sha256: str | None = None,
    fitted_flow_ids: Sequence[str] = (),
    progress: bool = True,
) -> MitigationResult:
    """Train the unmitigated model and each mitigation on one split; compare them on test."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValidationError(
            f"unknown mitigation method(s) {unknown}",
            obj="mitigation",
            field="methods",
            fix=f"choose from {', '.join(METHODS)}",
        )
    train_spec = TrainSpec.parse(spec)
    frame = as_polars(data)
    in_facet = _facet_mask(frame, facet, facet_value)
    matrix = build_matrix(frame, train_spec)
    split = entity_split(matrix.entities, matrix.y, train_spec.split, seed=train_spec.seed)
    fingerprint = dataset_sha256 or frame_fingerprint(frame)
    facet_column = matrix.features.index(facet) if facet in matrix.features else None
    common: dict[str, Any] = {"dataset_sha256": fingerprint, "fitted_flow_ids": fitted_flow_ids}
    X_tr, y_tr, g_tr = matrix.X[split.train], matrix.y[split.train], in_facet[split.train]
    rows: list[MitigationRow] = []
    results: dict[str, TrainResult] = {}
    # group thresholds reuse the unmitigated booster, so it is always trained
    ordered = ["none", *[m for m in methods if m != "none"]]
    with progress_bar("Mitigations", total=len(ordered), enabled=progress) as bar:
        for method in ordered:
            synthetic = 0
            described: dict[str, Any] = {"method": method, "facet": facet, "facet_value": facet_value}
            thresholds: float | FloatArray
            if method == "none":
                result = fit_evaluate(matrix, split, train_spec, **common)
            elif method in ("smote", "smote_label_preserving"):
                X_s, y_s, synthetic = smote_facet(
                    X_tr,
                    y_tr,
                    g_tr,
                    seed=smote_seed,
                    label_preserving=method == "smote_label_preserving",
                    facet_column=facet_column,
                )
                described.update(synthetic_rows=synthetic, smote_seed=smote_seed)
                result = fit_evaluate(
                    matrix, split, train_spec, train_set=(X_s, y_s, None), mitigation=described, **common
                )
            elif method == "reweighing":
                weights = kamiran_calders_weights(y_tr, g_tr)
                described["weights"] = {
                    f"facet={int(g)},label={label}": float(weights[(g_tr == g) & (y_tr == label)][0])
                    for g in (True, False)
                    for label in (0, 1)
                    if ((g_tr == g) & (y_tr == label)).any()
                }
                result = fit_evaluate(
                    matrix, split, train_spec, train_set=(X_tr, y_tr, weights), mitigation=described, **common
                )
            else:
                base = results["none"]
                global_t = base.evaluation.threshold.value
                t_d, t_a = group_thresholds_on_validation(
                    matrix.y[split.validation],
                    base.validation_scores,
                    in_facet[split.validation],
                    global_t,
                    objective=group_objective,
                )
                key = str(pl.Series([facet_value]).cast(frame.schema[facet]).cast(pl.String)[0])
                groups = GroupThresholds(column=facet, thresholds={key: t_d}, default=t_a)
                described.update(objective=group_objective, thresholds={"facet": t_d, "other": t_a})
                per_row_val = np.where(in_facet[split.validation], t_d, t_a)
                per_row_test = np.where(in_facet[split.test], t_d, t_a)
                result = fit_evaluate(
                    matrix,
                    split,
                    train_spec,
                    booster=(base.model.booster, {**_booster_info(base)}),
                    group_thresholds=(groups, per_row_val, per_row_test),
                    threshold_choice=base.evaluation.threshold,
                    mitigation=described,
                    **common,
                )
            thresholds = (
                np.where(in_facet[split.test], t_d, t_a)
                if method == "group_thresholds"
                else result.evaluation.threshold.value
            )
            results[method] = result
            if method in methods:
                rows.append(_row(method, result, matrix, split, in_facet, thresholds, synthetic))
            bar.advance(1)
    return MitigationResult(facet=facet, facet_value=facet_value, rows=rows, results=results)


def _booster_info(result: TrainResult) -> dict[str, Any]:
    spec = result.model.spec
    return {
        "best_iteration": spec.best_iteration,
        "rounds_trained": spec.training.get("rounds_trained", spec.num_trees),
        "scale_pos_weight": spec.params.get("scale_pos_weight_resolved"),
    }
