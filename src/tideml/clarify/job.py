"""A Clarify processing job, in-process: config + data (+ model) → bias metrics and explanations.

`run_analysis` maps Clarify's `analysis_config.json` onto `bias_report` and the explainers and returns
an `AnalysisOutput` whose `analysis_json()` is Clarify's `analysis.json`. No workspace is involved; the
service (`tideml.clarify.service`) persists the output and records lineage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from tideml.clarify._frame import Frame, FrameLike, load_frame
from tideml.clarify.analysis import BiasResult, Facet, FlipTestOptions, bias_report, normalize_compat
from tideml.clarify.config import AnalysisConfig, parse_config
from tideml.clarify.explain import Explanation, KernelShapExplainer, TreeShapExplainer
from tideml.clarify.model import Model, as_model
from tideml.errors import ValidationError

__all__ = ["AnalysisOutput", "load_dataset", "run_analysis"]


@dataclass
class AnalysisOutput:
    """The result of one analysis: bias metrics and/or explanations, and the config that produced them."""

    config: AnalysisConfig
    bias: BiasResult | None
    explanation: Explanation | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def agg_method(self) -> str:
        shap_cfg = self.config.methods.shap
        return shap_cfg.agg_method if shap_cfg is not None else "mean_abs"

    def analysis_json(self) -> dict[str, Any]:
        """Clarify's `analysis.json`."""
        out: dict[str, Any] = {"version": "1.0"}
        if self.bias is not None:
            out.update(self.bias.analysis_json())
        if self.explanation is not None:
            key = self.explanation.method
            out["explanations"] = {key: self.explanation.clarify(self.agg_method)}  # type: ignore[arg-type]
        return out

    def extras_json(self) -> dict[str, Any]:
        """tideml's additions (intervals, per-group performance, notes, settings, timings)."""
        out: dict[str, Any] = self.bias.extras_json() if self.bias is not None else {}
        out["notes"] = [*out.get("notes", []), *self.notes]
        out["timings_s"] = {**out.get("timings_s", {}), **self.timings}
        if self.explanation is not None:
            e = self.explanation
            out["explanation"] = {
                "method": e.method,
                "output": e.output,
                "rows": int(e.values.shape[0]),
                "expected_value": e.expected_value,
                "ranking": e.ranking(self.agg_method),  # type: ignore[arg-type]
                "settings": e.settings,
            }
        return out


def _side_input(path: str, headers: list[str] | None, n_rows: int, what: str) -> pl.DataFrame:
    side = load_frame(path, headers=headers)
    if side.height != n_rows:
        raise ValidationError(
            f"{side.height} rows in {path}, {n_rows} in the data",
            obj="analysis_config",
            field=what,
            fix="give one row per data row, in the same order, or set joinsource_name_or_index",
        )
    return side


def load_dataset(config: AnalysisConfig, path: str | Path | None = None) -> pl.DataFrame:
    """Read the data set (the path, else `dataset_uri`) and join the facet / predicted-label side files."""
    source = path or config.dataset_uri
    if source is None:
        raise ValidationError(
            "no data set given",
            obj="analysis_config",
            field="dataset_uri",
            fix="pass --data or set dataset_uri",
        )
    frame = load_frame(source, dataset_type=config.dataset_type, headers=config.headers)
    join = config.joinsource_name_or_index
    for uri, headers, what in (
        (config.facet_dataset_uri, config.facet_headers, "facet_dataset_uri"),
        (config.predicted_label_dataset_uri, config.predicted_label_headers, "predicted_label_dataset_uri"),
    ):
        if uri is None:
            continue
        if join is not None:
            key = config.column(join, "joinsource_name_or_index", frame.columns)
            side = load_frame(uri, headers=headers)
            if key not in side.columns:
                raise ValidationError(
                    f"the side file {uri} has no column {key!r}",
                    obj="analysis_config",
                    field=what,
                    fix="include the joinsource column in the side file",
                )
            frame = frame.join(side, on=key, how="left", maintain_order="left")
        else:
            side = _side_input(uri, headers, frame.height, what)
            frame = pl.concat(
                [frame, side.select([c for c in side.columns if c not in frame.columns])], how="horizontal"
            )
    return frame


def run_analysis(
    config: AnalysisConfig | dict[str, Any],
    data: FrameLike | Frame,
    *,
    model: Model | Any | None = None,
    compat: bool | str | None = None,
    probability_threshold: float | None = None,
    explain: bool | None = None,
    progress: bool = True,
) -> AnalysisOutput:
    """Run what the config's `methods` ask for on in-memory data (pre/post-training bias, SHAP)."""
    cfg = parse_config(config)
    frame = data if isinstance(data, Frame) else Frame(data)
    notes: list[str] = []
    timings: dict[str, float] = {}
    mode = normalize_compat(compat if compat is not None else cfg.compat)
    cols = frame.columns
    if cfg.label is None:
        raise ValidationError(
            "no label column",
            obj="analysis_config",
            field="label",
            fix="set label to the label column's name",
        )
    label = cfg.column(cfg.label, "label", cols)
    excluded = [cfg.column(c, "excluded_columns", cols) for c in cfg.excluded_columns]
    pred_col = (
        cfg.column(cfg.predicted_label, "predicted_label", cols) if cfg.predicted_label is not None else None
    )
    group = cfg.column(cfg.group_variable, "group_variable", cols) if cfg.group_variable is not None else None
    facets = []
    for i, f in enumerate(cfg.facet):
        names = f.name_or_index if isinstance(f.name_or_index, list) else [f.name_or_index]
        resolved = tuple(cfg.column(n, f"facet[{i}].name_or_index", cols) for n in names)
        facets.append(Facet(resolved[0] if len(resolved) == 1 else resolved, f.value_or_threshold, f.type))
    m = as_model(model) if model is not None else None
    not_features = {label, *excluded, *([pred_col] if pred_col else [])}
    feature_frame: pd.DataFrame | None = None
    if m is not None:
        candidates = [c for c in cols if c not in not_features]
        model_names: list[str] = m.feature_names or candidates
        frame_pd = frame.select_pandas([c for c in model_names if c in cols])
        feature_frame = m.features_of(frame_pd, exclude=list(not_features))
    bias: BiasResult | None = None
    pre = cfg.methods.pre_training_bias.methods if cfg.methods.pre_training_bias else None
    post = cfg.methods.post_training_bias.methods if cfg.methods.post_training_bias else None
    if pre is not None or post is not None:
        scores = None
        threshold = probability_threshold if probability_threshold is not None else cfg.probability_threshold
        if post is not None and pred_col is None and m is not None and feature_frame is not None:
            t = time.perf_counter()
            scores = m.predict(feature_frame)
            timings["predict"] = time.perf_counter() - t
            if threshold is None and m.decision_threshold is not None:
                threshold = m.decision_threshold
                notes.append(f"probability_threshold {threshold} taken from the model's decision_threshold")
        if post is not None and pred_col is None and m is None:
            raise ValidationError(
                "post-training metrics need predictions",
                obj="analysis_config",
                field="methods.post_training_bias",
                fix="pass a model (--model), set predicted_label to a column of predictions, or remove "
                "post_training_bias",
            )
        ft = cfg.flip_test
        boot = cfg.bootstrap
        t = time.perf_counter()
        bias = bias_report(
            frame,
            label=label,
            label_values_or_threshold=cfg.label_values_or_threshold,
            facets=facets,
            group_variable=group,
            predicted_label=pred_col,
            scores=scores,
            probability_threshold=threshold,
            label_headers=cfg.predictor.label_headers if cfg.predictor else None,
            pre_training=pre,
            post_training=post,
            label_type=cfg.label_type,
            label_distribution=cfg.label_distribution,
            excluded_columns=excluded,
            compat=mode,
            bootstrap=boot.n_boot if boot else 0,
            confidence=boot.confidence if boot else 0.95,
            seed=boot.seed if boot else 0,
            flip_test_options=FlipTestOptions(
                tuple(ft.features) if ft and ft.features else None,
                ft.standardize if ft else False,
                ft.max_rows if ft else 100_000,
                ft.seed if ft else 0,
            ),
        )
        timings["bias"] = time.perf_counter() - t
    explanation = None
    shap_cfg = cfg.methods.shap
    want_explain = explain if explain is not None else shap_cfg is not None
    if want_explain:
        if m is None or feature_frame is None:
            raise ValidationError(
                "explanations need a model",
                obj="analysis_config",
                field="methods.shap",
                fix="pass a model (--model), or remove methods.shap",
            )
        if shap_cfg is not None and (shap_cfg.text_config or shap_cfg.image_config):
            raise ValidationError(
                "text and image explanations are out of scope for tabular tideml",
                obj="analysis_config",
                field="methods.shap",
                fix="remove text_config / image_config",
            )
        t = time.perf_counter()
        explanation = _explain(cfg, m, feature_frame, progress)
        timings["explain"] = time.perf_counter() - t
    if cfg.methods.pdp is not None:
        notes.append("methods.pdp is not implemented by tideml yet; no PDP block was written")
    return AnalysisOutput(cfg, bias, explanation, notes, timings)


def _explain(cfg: AnalysisConfig, m: Model, features: pd.DataFrame, progress: bool) -> Explanation:
    shap_cfg = cfg.methods.shap
    method = shap_cfg.method if shap_cfg is not None else "auto"
    rows = features
    ids = None
    if shap_cfg is not None and shap_cfg.max_rows is not None and len(features) > shap_cfg.max_rows:
        idx = np.sort(
            np.random.default_rng(shap_cfg.seed or 0).choice(len(features), shap_cfg.max_rows, False)
        )
        rows = features.iloc[idx]
        ids = idx.tolist()
    if shap_cfg is not None and shap_cfg.features_to_explain:
        raise ValidationError(
            "features_to_explain is not supported: SHAP values of all features are computed",
            obj="analysis_config",
            field="methods.shap.features_to_explain",
            fix="remove it and read the features you need from the output",
        )
    if method == "tree" or (method == "auto" and m.booster is not None):
        if shap_cfg is not None and (shap_cfg.baseline is not None or shap_cfg.num_clusters is not None):
            method = "kernel" if method == "auto" else method
        if method != "kernel":
            return TreeShapExplainer(m).explain(rows, progress=progress, row_ids=ids)
    baseline: Any = shap_cfg.baseline if shap_cfg is not None else None
    if isinstance(baseline, list) and baseline and isinstance(baseline[0], list):
        baseline = pd.DataFrame(baseline, columns=list(features.columns))
    kernel = KernelShapExplainer(
        m,
        features,
        baseline=baseline if baseline is not None else "median",
        num_clusters=shap_cfg.num_clusters if shap_cfg is not None else None,
        num_samples=shap_cfg.num_samples if shap_cfg is not None else None,
        use_logit=shap_cfg.use_logit if shap_cfg is not None else False,
        seed=shap_cfg.seed if shap_cfg is not None and shap_cfg.seed is not None else 0,
        feature_names=list(features.columns),
    )
    return kernel.explain(rows, progress=progress, row_ids=ids)
