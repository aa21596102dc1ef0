"""Feature-attribution drift: has the ranking of global mean |SHAP| changed?

As the managed monitor does, the baseline and window rankings are compared with NDCG weighted by the
baseline's attributions a:

    DCG  = Σ_i a(f'_i) / log2(i + 1)   over the window's ranking f' (i = 1, 2, ...)
    iDCG = Σ_i a(f_i)  / log2(i + 1)   over the baseline's ranking f
    NDCG = DCG / iDCG, and a violation when NDCG < threshold (0.90).

Baselines are Clarify's explanation layout (`{"version": "1.0", "explanations": {"tree_shap": {"label0":
{"global_shap_values": {...}, "expected_value": ...}}}}`); window attributions come from
`tideml.clarify.TreeShapExplainer` on a sample of the window, or are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from tideml.errors import ValidationError
from tideml.monitor.violations import Violation

__all__ = [
    "AttributionDriftResult",
    "attribution_drift",
    "explanation_document",
    "global_attributions",
    "ndcg",
    "window_attributions",
]


def ndcg(baseline: Mapping[str, float], window: Mapping[str, float], *, k: int | None = None) -> float:
    """NDCG of the window's ranking against the baseline's, weighted by baseline |attributions|."""
    base = {f: abs(float(v)) for f, v in baseline.items()}
    if not base:
        return 1.0
    base_rank = sorted(base, key=lambda f: (-base[f], f))
    live_rank = sorted(window, key=lambda f: (-abs(float(window[f])), f))
    n = len(base_rank) if k is None else min(k, len(base_rank))
    discounts = 1.0 / np.log2(np.arange(2, n + 2))
    ideal = float(np.sum(np.array([base[f] for f in base_rank[:n]]) * discounts))
    if ideal == 0:
        return 1.0
    gains = np.array([base.get(f, 0.0) for f in live_rank[:n]] + [0.0] * max(0, n - len(live_rank[:n])))
    return float(np.sum(gains[:n] * discounts) / ideal)


def explanation_document(
    values: Mapping[str, float], *, expected_value: float = 0.0, method: str = "tree_shap"
) -> dict[str, Any]:
    """Clarify's explanation layout for a set of global attributions."""
    return {
        "version": "1.0",
        "explanations": {
            method: {"label0": {"global_shap_values": dict(values), "expected_value": float(expected_value)}}
        },
    }


def global_attributions(document: Mapping[str, Any]) -> dict[str, float]:
    """The `global_shap_values` of an explanation document (first method, first label)."""
    try:
        explanations = document["explanations"]
        method = next(iter(explanations.values()))
        label = next(iter(method.values()))
        return {str(k): float(v) for k, v in label["global_shap_values"].items()}
    except (KeyError, StopIteration, TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(
            f"not an explanation document ({exc.__class__.__name__}: {exc})",
            obj="attribution baseline",
            field="explanations.<method>.label0.global_shap_values",
            fix="pass the explainability analysis.json of the baseline",
        ) from None


def window_attributions(
    model: Any,
    frame: pl.DataFrame,
    *,
    features: Sequence[str] | None = None,
    sample: int = 2000,
    seed: int = 0,
) -> tuple[dict[str, float], float, int]:
    """(mean |SHAP| per feature, expected value, rows explained) of a sample of `frame` (TreeSHAP)."""
    from tideml.clarify import TreeShapExplainer

    explainer = TreeShapExplainer(model, feature_names=list(features) if features is not None else None)
    names = list(explainer.feature_names)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValidationError(
            f"the window lacks the model's features {missing[:5]}",
            obj="attribution drift",
            field="features",
            fix="capture the model-ready features the model was trained on",
        )
    rows = frame.select(names)
    if rows.height > sample:
        rows = rows.sample(n=sample, seed=seed)
    explanation = explainer.explain(rows.to_pandas(), progress=False)
    return explanation.global_values("mean_abs"), float(explanation.expected_value), rows.height


@dataclass
class AttributionDriftResult:
    """NDCG of the window's attribution ranking and the verdict."""

    ndcg: float
    threshold: float
    baseline: dict[str, float]
    window: dict[str, float]
    violations: list[Violation]
    rows: int = 0
    notes: list[str] = field(default_factory=list)


def attribution_drift(
    baseline: Mapping[str, float],
    window: Mapping[str, float],
    *,
    threshold: float = 0.9,
    k: int | None = None,
    rows: int = 0,
) -> AttributionDriftResult:
    """Compare rankings; one `feature_attribution_drift_check` violation when NDCG < threshold."""
    score = ndcg(baseline, window, k=k)
    violations: list[Violation] = []
    if score < threshold and math.isfinite(score):
        top_b = sorted(baseline, key=lambda f: -abs(baseline[f]))[:3]
        top_w = sorted(window, key=lambda f: -abs(window[f]))[:3]
        violations.append(
            Violation(
                "feature_attribution_drift_check",
                f"Feature attribution drift {score:.4f} is below threshold {threshold} "
                f"(baseline top features {top_b}, window {top_w})",
                monitor="attribution",
                label="label0",
                metric_name="ndcg",
            )
        )
    return AttributionDriftResult(score, threshold, dict(baseline), dict(window), violations, rows)
