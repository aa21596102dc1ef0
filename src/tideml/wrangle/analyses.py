"""Analyses of a table: summary, histograms, class balance, correlations, VIF, target leakage, quick model.

`analyze(frame, target="fraud")` returns an `AnalysisReport`; `report.save(dir)` writes `analysis.json`
and a self-contained `analysis.html` (plots embedded as PNG; it opens with no network). The heavier
analyses run on a seeded sample of at most `max_rows` rows.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from tideml._progress import progress_bar
from tideml.errors import NotFound, ValidationError
from tideml.wrangle.io import atomic_write_text

__all__ = ["LEAKAGE_THRESHOLD", "VIF_CLIP", "AnalysisReport", "analyze", "read_table"]

VIF_CLIP = 50.0
LEAKAGE_THRESHOLD = 0.95
HIGH_CORRELATION = 0.9
_MAX_CLASSES = 100  # more distinct labels than this: treat the target as numeric (regression)


def read_table(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read a CSV or Parquet file for analysis."""
    p = Path(path)
    if not p.exists():
        raise NotFound(f"no file at {p}", obj="analysis", fix="check the path")
    if p.suffix.lower() == ".csv":
        return pl.read_csv(p, infer_schema_length=10_000)
    if p.suffix.lower() in (".parquet", ".pq"):
        return pl.read_parquet(p)
    raise ValidationError(
        f"cannot read {p.suffix or 'a file without extension'}", obj="analysis", fix="use CSV or Parquet"
    )


def _finite(value: Any) -> Any:
    """JSON-safe numbers: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class AnalysisReport:
    """Every analysis of one table, as plain data (see `to_dict`)."""

    title: str
    rows: int
    columns: int
    sampled_rows: int
    target: str | None
    problem: str | None
    summary: list[dict[str, Any]] = field(default_factory=list)
    histograms: dict[str, dict[str, Any]] = field(default_factory=dict)
    class_balance: list[dict[str, Any]] | None = None
    correlations: dict[str, Any] = field(default_factory=dict)
    vif: list[dict[str, Any]] = field(default_factory=list)
    leakage: list[dict[str, Any]] = field(default_factory=list)
    quick_model: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data."""
        return asdict(self)

    def to_json(self) -> str:
        """The report as strict JSON (NaN never appears: missing statistics are null)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str)

    def to_html(self) -> str:
        """A self-contained HTML report (inline CSS, PNG plots as data URIs)."""
        from tideml.wrangle.analysis_html import render

        return render(self)

    def save(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write analysis.json and analysis.html into `out_dir` (atomically)."""
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return {
            "json": atomic_write_text(folder / "analysis.json", self.to_json() + "\n"),
            "html": atomic_write_text(folder / "analysis.html", self.to_html()),
        }


def _summary(df: pl.DataFrame) -> list[dict[str, Any]]:
    out = []
    for name, dtype in df.schema.items():
        s = df.get_column(name)
        item: dict[str, Any] = {
            "column": name,
            "dtype": str(dtype),
            "count": s.len() - s.null_count(),
            "missing": s.null_count(),
            "distinct": s.n_unique(),
        }
        if dtype.is_numeric():
            values = s.cast(pl.Float64)
            finite = values.filter(values.is_finite())
            item["nan"] = int(values.is_nan().sum()) if dtype.is_float() else 0
            item.update(
                min=_finite(finite.min()),
                max=_finite(finite.max()),
                mean=_finite(finite.mean()),
                std=_finite(finite.std()),
            )
        else:
            counts = s.drop_nulls().cast(pl.String).value_counts(sort=True)
            if counts.height:
                top, bottom = counts.row(0), counts.row(counts.height - 1)
                item.update(
                    most_frequent={"value": top[0], "count": top[1]},
                    least_frequent={"value": bottom[0], "count": bottom[1]},
                )
        out.append(item)
    return out


def _histograms(df: pl.DataFrame, limit: int = 40, bins: int = 20) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, dtype in list(df.schema.items())[:limit]:
        s = df.get_column(name)
        if dtype.is_numeric():
            values = s.cast(pl.Float64).drop_nulls().to_numpy()
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            counts, edges = np.histogram(values, bins=min(bins, max(1, int(np.unique(values).size))))
            out[name] = {"kind": "numeric", "edges": edges.tolist(), "counts": counts.tolist()}
        else:
            top = s.cast(pl.String).fill_null("(null)").value_counts(sort=True).head(20)
            out[name] = {
                "kind": "categorical",
                "values": top[name].to_list(),
                "counts": top["count"].to_list(),
            }
    return out


def _numeric_matrix(df: pl.DataFrame, columns: list[str]) -> npt.NDArray[np.float64]:
    return df.select(pl.col(columns).cast(pl.Float64).fill_nan(None)).drop_nulls().to_numpy()


def _correlations(df: pl.DataFrame, columns: list[str]) -> dict[str, Any]:
    x = _numeric_matrix(df, columns)
    if x.shape[0] < 3 or not columns:
        return {"columns": columns, "matrix": [], "high_pairs": []}
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(x, rowvar=False)
    corr = np.atleast_2d(corr)
    matrix = [[_finite(float(v)) for v in row] for row in corr]
    pairs = []
    for i in range(len(columns)):
        for j in range(i + 1, len(columns)):
            v = corr[i, j]
            if math.isfinite(v) and abs(v) >= HIGH_CORRELATION:
                pairs.append({"a": columns[i], "b": columns[j], "r": float(v)})
    return {"columns": columns, "matrix": matrix, "high_pairs": pairs}


def _vif(df: pl.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Variance inflation factors, clipped at 50 (Data Wrangler's convention; 5 or more is high)."""
    x = _numeric_matrix(df, columns)
    keep = [i for i in range(x.shape[1]) if x.shape[0] > 1 and np.std(x[:, i]) > 0]
    out: list[dict[str, Any]] = [
        {"column": columns[i], "vif": None, "note": "constant"} for i in range(len(columns)) if i not in keep
    ]
    if len(keep) < 2 or x.shape[0] <= len(keep):
        return out + [{"column": columns[i], "vif": 1.0, "note": ""} for i in keep]
    z = x[:, keep]
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    for pos, i in enumerate(keep):
        y = z[:, pos]
        others = np.delete(z, pos, axis=1)
        design = np.column_stack([np.ones(len(y)), others])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = y - design @ coef
        r2 = 1.0 - float(residual @ residual) / float(y @ y)
        vif = VIF_CLIP if r2 >= 1 - 1 / VIF_CLIP else min(VIF_CLIP, 1.0 / (1.0 - r2))
        out.append({"column": columns[i], "vif": round(vif, 4), "note": "high" if vif >= 5 else ""})
    order = {c: k for k, c in enumerate(columns)}
    return sorted(out, key=lambda item: order[item["column"]])


def _encode_features(df: pl.DataFrame, features: list[str]) -> npt.NDArray[np.float64]:
    """Numbers as they are (NaN for missing), other columns as lexical category codes."""
    exprs = []
    for name in features:
        dtype = df.schema[name]
        if dtype.is_numeric() or dtype == pl.Boolean:
            exprs.append(pl.col(name).cast(pl.Float64).fill_null(float("nan")))
        else:
            exprs.append(pl.col(name).cast(pl.String).rank("dense").cast(pl.Float64).fill_null(float("nan")))
    return df.select(exprs).to_numpy().astype(np.float64)


def _leakage(
    x: npt.NDArray[np.float64], y: npt.NDArray[Any], features: list[str], problem: str, seed: int
) -> list[dict[str, Any]]:
    """Cross-validated score of a depth-3 tree on each feature alone: ROC-AUC, or R² for regression."""
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    classification = problem == "classification"
    classes = np.unique(y) if classification else np.array([])
    splitter = (
        StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
        if classification
        else KFold(n_splits=3, shuffle=True, random_state=seed)
    )
    folds = list(splitter.split(x, y))
    out = []
    for i, name in enumerate(features):
        column = x[:, i : i + 1].copy()
        column[np.isnan(column)] = np.nanmedian(column) if np.isfinite(column).any() else 0.0
        if classification:
            proba = np.zeros((len(y), len(classes)))
            for train, test in folds:
                tree = DecisionTreeClassifier(max_depth=3, random_state=seed).fit(column[train], y[train])
                proba[np.ix_(test, np.searchsorted(classes, tree.classes_))] = tree.predict_proba(
                    column[test]
                )
            if len(classes) == 2:
                score = float(roc_auc_score(y, proba[:, 1]))
            else:
                score = float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))
            metric = "roc_auc"
        else:
            pred = np.zeros(len(y))
            for train, test in folds:
                pred[test] = (
                    DecisionTreeRegressor(max_depth=3, random_state=seed)
                    .fit(column[train], y[train])
                    .predict(column[test])
                )
            score, metric = float(r2_score(y, pred)), "r2"
        flag = "possible leakage" if score >= LEAKAGE_THRESHOLD else ("no signal" if score <= 0.52 else "")
        out.append({"column": name, "metric": metric, "score": round(score, 4), "flag": flag})
    return sorted(out, key=lambda item: -item["score"])


def _quick_model(
    x: npt.NDArray[np.float64], y: npt.NDArray[Any], features: list[str], problem: str, seed: int
) -> dict[str, Any]:
    """XGBoost on a 70/30 split (stratified for classification) with gain importances."""
    import xgboost as xgb
    from sklearn import metrics
    from sklearn.model_selection import train_test_split

    stratify = y if problem == "classification" else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=seed, stratify=stratify
    )
    params: dict[str, Any] = dict(
        n_estimators=60, max_depth=4, learning_rate=0.15, n_jobs=1, tree_method="hist", random_state=seed
    )
    result: dict[str, Any] = {"model": "xgboost", "train_rows": len(y_train), "test_rows": len(y_test)}
    if problem == "classification":
        classes = np.unique(y)
        encoded_train = np.searchsorted(classes, y_train)
        encoded_test = np.searchsorted(classes, y_test)
        model: Any = xgb.XGBClassifier(**params)
        model.fit(x_train, encoded_train)
        proba = model.predict_proba(x_test)
        pred = proba.argmax(axis=1)
        if len(classes) == 2:
            result.update(
                roc_auc=float(metrics.roc_auc_score(encoded_test, proba[:, 1])),
                average_precision=float(metrics.average_precision_score(encoded_test, proba[:, 1])),
                f1=float(metrics.f1_score(encoded_test, pred, zero_division=0)),
            )
        else:
            result["f1_macro"] = float(metrics.f1_score(encoded_test, pred, average="macro", zero_division=0))
        result["accuracy"] = float(metrics.accuracy_score(encoded_test, pred))
    else:
        model = xgb.XGBRegressor(**params)
        model.fit(x_train, y_train)
        pred = model.predict(x_test)
        result.update(
            r2=float(metrics.r2_score(y_test, pred)),
            rmse=float(math.sqrt(metrics.mean_squared_error(y_test, pred))),
        )
    gains = model.get_booster().get_score(importance_type="gain")
    total = sum(gains.values()) or 1.0
    importances = [
        {"column": name, "importance": round(gains.get(f"f{i}", 0.0) / total, 6)}
        for i, name in enumerate(features)
    ]
    result["importances"] = sorted(importances, key=lambda item: -item["importance"])
    return result


def analyze(
    data: pl.DataFrame | str | os.PathLike[str],
    *,
    target: str | None = None,
    max_rows: int = 50_000,
    seed: int = 0,
    progress: bool = False,
    title: str | None = None,
) -> AnalysisReport:
    """Profile a table; with a `target`, add class balance, leakage and a quick model."""
    df = data if isinstance(data, pl.DataFrame) else read_table(data)
    name = title or ("table" if isinstance(data, pl.DataFrame) else Path(data).name)
    if target is not None and target not in df.columns:
        raise ValidationError("unknown column: not in the table", obj=f"analysis of {name}", field=target)
    sample = df.sample(n=max_rows, seed=seed) if df.height > max_rows else df
    report = AnalysisReport(
        title=name, rows=df.height, columns=df.width, sampled_rows=sample.height, target=target, problem=None
    )
    numeric = [c for c, t in df.schema.items() if t.is_numeric() or t == pl.Boolean]
    with progress_bar("Analysing", total=6, enabled=progress) as bar:
        report.summary = _summary(df)
        report.histograms = _histograms(sample)
        bar.advance()
        report.correlations = _correlations(sample, numeric)
        bar.advance()
        report.vif = _vif(sample, [c for c in numeric if c != target])
        bar.advance()
        for item in report.summary:
            if item["missing"]:
                report.warnings.append(f"{item['column']}: {item['missing']} missing values")
            if item["distinct"] == 1:
                report.warnings.append(f"{item['column']}: constant")
        for pair in report.correlations.get("high_pairs", []):
            report.warnings.append(f"{pair['a']} and {pair['b']} are highly correlated (r = {pair['r']:.3f})")
        if target is None:
            bar.advance(3)
            return report
        labelled = sample.filter(pl.col(target).is_not_null())
        y_series = labelled.get_column(target)
        distinct = y_series.n_unique()
        # Data Wrangler's rule: more than 100 distinct numeric labels is a regression problem.
        numeric_target = df.schema[target].is_numeric()
        report.problem = "regression" if numeric_target and distinct > _MAX_CLASSES else "classification"
        if report.problem == "classification":
            counts = y_series.value_counts(sort=True)
            sizes = [int(c) for c in counts["count"].to_list()]
            report.class_balance = [
                {"value": v, "count": c, "share": c / labelled.height}
                for v, c in zip(counts[target].to_list(), sizes, strict=True)
            ]
            if len(sizes) >= 2 and min(sizes) / labelled.height < 0.1:
                report.warnings.append(f"{target}: imbalanced classes (minority {min(sizes)} rows)")
        bar.advance()
        features = [c for c in df.columns if c != target]
        y = y_series.to_numpy()
        smallest = min(int(c) for c in y_series.value_counts()["count"].to_list())
        if report.problem == "classification" and (distinct < 2 or smallest < 3):
            report.warnings.append(f"{target}: too few rows per class for leakage checks and a quick model")
            bar.advance(2)
            return report
        x = _encode_features(labelled, features)
        report.leakage = _leakage(x, y, features, report.problem, seed)
        for item in report.leakage:
            if item["flag"] == "possible leakage":
                report.warnings.append(
                    f"{item['column']}: {item['metric']} {item['score']} alone (possible leakage)"
                )
        bar.advance()
        report.quick_model = _quick_model(x, y, features, report.problem, seed)
        bar.advance()
    return report
