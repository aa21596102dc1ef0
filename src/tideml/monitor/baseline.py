"""Baselines: statistics and suggested constraints of a training frame, in the managed file layouts.

`suggest_baseline(frame, ...)` returns a `Baseline`; `Baseline.write(folder)` writes:

- `statistics.json`: per-feature statistics (managed layout, KLL-style sketches); always;
- `constraints.json`: suggested data-quality and drift constraints (managed layout, hand-editable); always;
- `model_quality_statistics.json`, `model_quality_constraints.json`: binary metrics and their limits, when
  the label and prediction columns are given;
- `bias_analysis.json`: Clarify's bias blocks on the baseline (the bias-drift constraints), with `bias=`;
- `explainability_analysis.json`: Clarify's global SHAP values (attribution-drift baseline), with `model=`;
- `baseline.json`: tideml's manifest (label, prediction, id and time columns, threshold, bias settings).

`load_baseline(folder)` validates every file, so a hand edit with a mistake is an error naming the file, the
line and the field.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pydantic

from tideml.artifacts import atomic_write
from tideml.errors import NotFound, ValidationError
from tideml.monitor._jsonfile import read_json, validate_json
from tideml.monitor.attribution import explanation_document, global_attributions, window_attributions
from tideml.monitor.bias import BiasDriftConfig, bias_available, bias_baseline
from tideml.monitor.capture import CaptureFormat, as_frame
from tideml.monitor.constraints import Constraints, suggest_constraints
from tideml.monitor.quality import (
    ModelQualityConstraints,
    binary_classification_metrics,
    suggest_model_quality_constraints,
)
from tideml.monitor.sketch import DEFAULT_K
from tideml.monitor.statistics import DatasetStatistics, compute_statistics

__all__ = ["FILES", "Baseline", "BaselineSettings", "dumps", "load_baseline", "suggest_baseline"]

FILES = {
    "statistics": "statistics.json",
    "constraints": "constraints.json",
    "model_quality_statistics": "model_quality_statistics.json",
    "model_quality_constraints": "model_quality_constraints.json",
    "bias": "bias_analysis.json",
    "attribution": "explainability_analysis.json",
    "settings": "baseline.json",
}


class BaselineSettings(pydantic.BaseModel):
    """tideml's manifest of a baseline (`baseline.json`)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    version: int = 1
    label_column: str | None = None
    prediction_column: str | None = None
    threshold: float = pydantic.Field(0.5, ge=0, le=1)
    capture: CaptureFormat = pydantic.Field(default_factory=CaptureFormat)
    excluded_columns: list[str] = pydantic.Field(default_factory=list)
    bias: BiasDriftConfig | None = None
    attribution_features: list[str] | None = None
    rows: int = 0


_NUMBER_LIST = re.compile(r"\[\s+([-+0-9.eE,\s]+?)\s+\]")


def dumps(data: Any) -> bytes:
    """Indented JSON, no NaN, lists of numbers on one line (what every monitor file is written with)."""
    text = json.dumps(data, indent=2, allow_nan=False)
    text = _NUMBER_LIST.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    return text.encode("utf-8") + b"\n"


@dataclass
class Baseline:
    """Everything a monitor compares windows with."""

    statistics: DatasetStatistics
    constraints: Constraints
    settings: BaselineSettings = field(default_factory=BaselineSettings)
    model_quality_statistics: dict[str, Any] | None = None
    model_quality_constraints: ModelQualityConstraints | None = None
    bias: dict[str, Any] | None = None
    attribution: dict[str, Any] | None = None

    @property
    def types(self) -> dict[str, Any]:
        """Feature → inferred type, from the constraints (what a window is checked against)."""
        return {f.name: f.inferred_type for f in self.constraints.features}

    def documents(self) -> dict[str, Any]:
        """File name → JSON document of every file this baseline has."""
        docs: dict[str, Any] = {
            FILES["statistics"]: self.statistics.to_json(),
            FILES["constraints"]: self.constraints.to_json(),
            FILES["settings"]: self.settings.model_dump(mode="json", exclude_none=True),
        }
        if self.model_quality_statistics is not None:
            docs[FILES["model_quality_statistics"]] = self.model_quality_statistics
        if self.model_quality_constraints is not None:
            docs[FILES["model_quality_constraints"]] = self.model_quality_constraints.to_json()
        if self.bias is not None:
            docs[FILES["bias"]] = self.bias
        if self.attribution is not None:
            docs[FILES["attribution"]] = self.attribution
        return docs

    def files(self) -> dict[str, bytes]:
        """File name → bytes, as written."""
        return {name: dumps(doc) for name, doc in self.documents().items()}

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write every file into `folder` (atomically, one by one)."""
        out = Path(folder)
        if out.exists() and not out.is_dir():
            raise ValidationError(
                "is a file, not a folder", obj=str(out), fix="pass a folder for the baseline"
            )
        written: dict[str, Path] = {}
        for name, data in self.files().items():
            atomic_write(out / name, data)
            written[name] = out / name
        return written

    @classmethod
    def from_files(cls, files: dict[str, bytes], *, where: str = "baseline") -> Baseline:
        """A baseline from file name → bytes (e.g. read back from the artifact store)."""

        def doc(name: str) -> tuple[Any, str] | None:
            if name not in files:
                return None
            text = files[name].decode("utf-8")
            try:
                return json.loads(text), text
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    f"not valid JSON: {exc.msg}",
                    obj=f"{where}/{name}",
                    field=f"line {exc.lineno}",
                    fix="fix the JSON",
                ) from None

        return cls._build(doc, where)

    @classmethod
    def _build(cls, doc: Any, where: str) -> Baseline:
        stats_doc = doc(FILES["statistics"])
        cons_doc = doc(FILES["constraints"])
        if stats_doc is None or cons_doc is None:
            raise NotFound(
                "a baseline needs statistics.json and constraints.json",
                obj=where,
                fix="create one with `tide monitor baseline DATA --out FOLDER`",
            )
        statistics = DatasetStatistics.from_json(
            stats_doc[0], path=f"{where}/statistics.json", text=stats_doc[1]
        )
        constraints = Constraints.from_json(cons_doc[0], path=f"{where}/constraints.json", text=cons_doc[1])
        settings_doc = doc(FILES["settings"])
        settings = (
            validate_json(
                BaselineSettings,
                settings_doc[0],
                path=f"{where}/baseline.json",
                text=settings_doc[1],
                what="baseline manifest",
                fix="correct the field or regenerate the baseline",
            )
            if settings_doc is not None
            else BaselineSettings()
        )
        mq_doc = doc(FILES["model_quality_constraints"])
        mq = (
            ModelQualityConstraints.from_json(
                mq_doc[0], path=f"{where}/model_quality_constraints.json", text=mq_doc[1]
            )
            if mq_doc is not None
            else None
        )
        mq_stats = doc(FILES["model_quality_statistics"])
        bias = doc(FILES["bias"])
        attribution = doc(FILES["attribution"])
        if attribution is not None:
            global_attributions(attribution[0])  # validates the layout now, not at the first run
        return cls(
            statistics=statistics,
            constraints=constraints,
            settings=settings,
            model_quality_statistics=mq_stats[0] if mq_stats else None,
            model_quality_constraints=mq,
            bias=bias[0] if bias else None,
            attribution=attribution[0] if attribution else None,
        )


def load_baseline(folder: str | Path) -> Baseline:
    """Read and validate a baseline folder (statistics.json and constraints.json at least)."""
    root = Path(folder)
    if not root.is_dir():
        raise NotFound(
            "no such baseline folder", obj=str(root), fix="pass the folder `tide monitor baseline` wrote"
        )

    def doc(name: str) -> tuple[Any, str] | None:
        path = root / name
        if not path.exists():
            return None
        return read_json(path, what=name, fix=f"fix {name}")

    return Baseline._build(doc, str(root))


def suggest_baseline(
    data: Any,
    *,
    label_column: str | None = None,
    prediction_column: str | None = None,
    threshold: float = 0.5,
    exclude: list[str] | tuple[str, ...] = (),
    capture: CaptureFormat | None = None,
    bias: BiasDriftConfig | None = None,
    model: Any = None,
    attribution_features: list[str] | None = None,
    attribution_sample: int = 2000,
    quality_tolerance: float = 0.05,
    k: int = DEFAULT_K,
    seed: int = 0,
) -> Baseline:
    """Profile a training frame (Polars, pandas or a file path) and suggest every constraint it supports."""
    if isinstance(data, str | os.PathLike):
        from tideml.monitor.capture import read_window

        frame = read_window(data, hash_files=False).frame
    else:
        frame = as_frame(data, what="baseline data")
    if frame.height == 0:
        raise ValidationError("the baseline data has no rows", obj="baseline", fix="pass the training data")
    fmt = capture or CaptureFormat()
    for column, what in ((label_column, "label_column"), (prediction_column, "prediction_column")):
        if column is not None and column not in frame.columns:
            raise ValidationError(
                f"column {column!r} is not in the data",
                obj="baseline",
                field=what,
                fix="name a column of the data",
            )
    skip = {*exclude, fmt.id_column, fmt.time_column}
    if label_column is not None:
        skip.add(label_column)
    columns = [c for c in frame.columns if c not in skip]
    statistics = compute_statistics(frame, columns=columns, k=k, seed=seed)
    constraints = suggest_constraints(statistics)
    settings = BaselineSettings(
        label_column=label_column,
        prediction_column=prediction_column,
        threshold=threshold,
        capture=fmt
        if prediction_column is None
        else fmt.model_copy(update={"prediction_column": prediction_column}),
        excluded_columns=sorted(set(exclude)),
        bias=bias,
        attribution_features=attribution_features,
        rows=frame.height,
    )
    baseline = Baseline(statistics, constraints, settings)
    if label_column is not None and prediction_column is not None:
        y = frame[label_column].cast(pl.Float64).to_numpy()
        s = frame[prediction_column].cast(pl.Float64).to_numpy()
        keep = ~(np.isnan(y) | np.isnan(s))
        if len(np.unique(y[keep] > 0.5)) == 2:
            metrics = binary_classification_metrics(y[keep], s[keep], threshold=threshold, seed=seed)
            baseline.model_quality_statistics = {
                "version": 0.0,
                "dataset": {"item_count": int(keep.sum())},
                "binary_classification_metrics": metrics,
            }
            baseline.model_quality_constraints = suggest_model_quality_constraints(
                metrics, tolerance=quality_tolerance
            )
    if bias is not None:
        if label_column is None or prediction_column is None:
            raise ValidationError(
                "bias drift needs the label and the prediction",
                obj="baseline",
                field="bias",
                fix="pass label_column and prediction_column with bias=",
            )
        if not bias_available():
            raise ValidationError(
                "tideml.clarify is not importable",
                obj="baseline",
                field="bias",
                fix="install tideml with clarify",
            )
        baseline.bias = bias_baseline(
            frame,
            label=label_column,
            scores=frame[prediction_column].to_numpy(),
            threshold=threshold,
            config=bias,
        )
    if model is not None:
        values, expected, _ = window_attributions(
            model, frame, features=attribution_features, sample=attribution_sample, seed=seed
        )
        baseline.attribution = explanation_document(values, expected_value=expected)
    return baseline
