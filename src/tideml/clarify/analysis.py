"""The bias analysis: labels, facets and groups → one count table per facet → every metric at once.

`bias_report` is the functional core: data in, `BiasResult` out, no workspace. It reproduces Clarify's
`analysis.json` bias blocks (`BiasResult.analysis_json`) and adds what Clarify lacks: bootstrap confidence
intervals, intersectional facets, per-group performance and notes on anything it skipped or assumed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tideml.clarify._arith import (
    EMPTY_FACET,
    EMPTY_REST,
    MESSAGES,
    NO_GROUP_VARIABLE,
    Q,
    flag,
)
from tideml.clarify._catalog import GROUP_METRICS, METRICS, POST_TRAINING, PRE_TRAINING
from tideml.clarify._frame import Frame, FrameLike
from tideml.clarify._pair import Pair
from tideml.clarify.bootstrap import bootstrap_intervals
from tideml.clarify.facets import (
    ColumnType,
    FacetGroups,
    LabelRule,
    build_counts,
    facet_groups,
    label_rule,
    match_values,
)
from tideml.clarify.performance import PerformanceTable, performance_by_group
from tideml.clarify.posttraining import flip_test
from tideml.errors import ValidationError

__all__ = [
    "BiasResult",
    "Facet",
    "FacetResult",
    "FlipTestOptions",
    "MetricValue",
    "StageResult",
    "bias_report",
    "normalize_compat",
    "resolve_methods",
    "suggest_group_variable",
]

Methods = Literal["all"] | Sequence[str] | None


def normalize_compat(compat: bool | str | None) -> bool:
    """`compat` as a bool: True / "smclarify" switch on smclarify's quirks; False / None / "" do not."""
    if compat is None or compat is False or compat == "":
        return False
    if compat is True or (isinstance(compat, str) and compat.lower() == "smclarify"):
        return True
    raise ValidationError(
        f"unknown compatibility mode {compat!r}",
        obj="clarify",
        field="compat",
        fix='use "smclarify" to reproduce smclarify 0.5, or leave it unset for the correct math',
    )


@dataclass(frozen=True)
class Facet:
    """One facet to analyse: a column (or several, for an intersection) and the values or threshold of *d*."""

    name: str | tuple[str, ...]
    value_or_threshold: Any = None
    type: ColumnType | None = None


@dataclass(frozen=True)
class FlipTestOptions:
    """FT settings: feature columns (default: every other column), scaling, sample cap and seed."""

    features: tuple[str, ...] | None = None
    standardize: bool = False
    max_rows: int | None = 100_000
    seed: int = 0


@dataclass
class MetricValue:
    """One metric entry of a facet: Clarify's name/description/value/error, plus tideml's interval."""

    name: str
    description: str
    value: float | None
    error: str | None = None
    ci: tuple[float | None, float | None] | None = None
    ci_undefined_share: float | None = None

    def clarify(self) -> dict[str, Any]:
        """The entry as Clarify writes it (infinities as the strings "Infinity" / "-Infinity")."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "value": _json_num(self.value),
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def _json_num(v: float | None) -> float | str | None:
    if v is None:
        return None
    if np.isposinf(v):
        return "Infinity"
    if np.isneginf(v):
        return "-Infinity"
    return float(v)


@dataclass
class FacetResult:
    """Metrics of one facet selection (one element of Clarify's per-facet list)."""

    value_or_threshold: str
    metrics: list[MetricValue]
    n_d: int
    n_a: int

    def metric(self, code: str) -> MetricValue:
        """The entry of one metric code."""
        for m in self.metrics:
            if m.name == code:
                return m
        raise KeyError(code)


@dataclass
class StageResult:
    """`pre_training_bias_metrics` or `post_training_bias_metrics`."""

    label: str
    label_value_or_threshold: str
    facets: dict[str, list[FacetResult]]

    def clarify(self) -> dict[str, Any]:
        """The block in Clarify's layout."""
        return {
            "label": self.label,
            "facets": {
                key: [
                    {
                        "value_or_threshold": fr.value_or_threshold,
                        "metrics": [m.clarify() for m in fr.metrics],
                    }
                    for fr in results
                ]
                for key, results in self.facets.items()
            },
            "label_value_or_threshold": self.label_value_or_threshold,
        }


@dataclass
class BiasResult:
    """Everything one bias analysis produced."""

    pre_training: StageResult | None
    post_training: StageResult | None
    performance: dict[str, PerformanceTable]
    notes: list[str]
    compat: bool
    n_rows: int
    probability_threshold: float | None = None
    bootstrap: dict[str, Any] | None = None
    flip_tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def analysis_json(self) -> dict[str, Any]:
        """The bias part of Clarify's `analysis.json`."""
        out: dict[str, Any] = {"version": "1.0"}
        if self.post_training is not None:
            out["post_training_bias_metrics"] = self.post_training.clarify()
        if self.pre_training is not None:
            out["pre_training_bias_metrics"] = self.pre_training.clarify()
        return out

    def extras_json(self) -> dict[str, Any]:
        """What Clarify's layout has no place for: intervals, per-group performance, notes, settings."""
        intervals: dict[str, Any] = {}
        for stage_name, stage in (("pre_training", self.pre_training), ("post_training", self.post_training)):
            if stage is None:
                continue
            intervals[stage_name] = {
                key: [
                    {
                        "value_or_threshold": fr.value_or_threshold,
                        "n_d": fr.n_d,
                        "n_a": fr.n_a,
                        "metrics": {
                            m.name: {
                                "value": _json_num(m.value),
                                "ci": None if m.ci is None else [_json_num(m.ci[0]), _json_num(m.ci[1])],
                                "ci_undefined_share": m.ci_undefined_share,
                            }
                            for m in fr.metrics
                        },
                    }
                    for fr in results
                ]
                for key, results in stage.facets.items()
            }
        return {
            "compat": "smclarify" if self.compat else None,
            "n_rows": self.n_rows,
            "probability_threshold": self.probability_threshold,
            "bootstrap": self.bootstrap,
            "metrics": intervals,
            "performance_by_group": {k: t.to_dict() for k, t in self.performance.items()},
            "flip_test": self.flip_tests,
            "notes": list(self.notes),
            "timings_s": dict(self.timings),
        }


def resolve_methods(methods: Methods, stage: str) -> list[str]:
    """Metric codes for `"all"`, a list of codes (validated), or None (none)."""
    valid = PRE_TRAINING if stage == "pre" else POST_TRAINING
    if methods is None:
        return []
    if isinstance(methods, str):
        if methods == "all":
            return list(valid)
        methods = [methods]
    unknown = [m for m in methods if m not in valid]
    if unknown:
        field_name = "pre_training_bias.methods" if stage == "pre" else "post_training_bias.methods"
        raise ValidationError(
            f"unknown metric code(s) {', '.join(map(str, unknown))}",
            obj="analysis_config",
            field=f"methods.{field_name}",
            fix=f'use "all" or a subset of {", ".join(valid)}',
        )
    return sorted(dict.fromkeys(methods))


# -- group variable suggestion -----------------------------------------------------------------------------
def _cramers_v(x: npt.NDArray[np.int64], y: npt.NDArray[np.int64]) -> float:
    kx, ky = int(x.max()) + 1, int(y.max()) + 1
    table = np.bincount(x * ky + y, minlength=kx * ky).reshape(kx, ky).astype(np.float64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return 0.0
    n = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))


def suggest_group_variable(
    frame: Frame,
    facet_d: npt.NDArray[np.bool_],
    label_positive: npt.NDArray[np.bool_],
    exclude: Sequence[str],
    *,
    max_levels: int = 20,
    sample: int = 50_000,
) -> str | None:
    """A categorical column associated with both the facet and the label (a likely confounder), or None.

    Columns that (nearly) determine the facet are skipped: inside their subgroups the facet would be
    constant and CDD would say nothing. A candidate needs at least half its rows in subgroups that hold
    both facet groups.
    """
    rng = np.random.default_rng(0)
    idx = rng.choice(frame.n_rows, size=sample, replace=False) if frame.n_rows > sample else None
    f_all, y_all = facet_d.astype(np.int64), label_positive.astype(np.int64)
    best: tuple[float, str] | None = None
    for col in frame.columns:
        if col in exclude or frame.kind(col) == "float":
            continue
        codes, uniques = frame.factorize(col)
        if not 2 <= len(uniques) <= max_levels:
            continue
        codes = np.where(codes < 0, len(uniques), codes)
        f, y = f_all, y_all
        if idx is not None:
            codes, f, y = codes[idx], f[idx], y[idx]
        k = int(codes.max()) + 1
        both = np.bincount(codes * 2 + f, minlength=2 * k).reshape(k, 2)
        mixed = (both > 0).all(axis=1)
        if both[mixed].sum() < 0.5 * len(codes):
            continue
        score = _cramers_v(codes, f) * _cramers_v(codes, y)
        if best is None or score > best[0]:
            best = (score, col)
    return best[1] if best is not None and best[0] > 0 else None


# -- the analysis ------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    frame: Frame
    rule: LabelRule
    y_pos: npt.NDArray[np.bool_]
    p_pos: npt.NDArray[np.bool_] | None
    positive: npt.NDArray[np.bool_]
    base: npt.NDArray[np.int64]
    tail: tuple[int, int, int]
    has_group: bool


def _predicted_positive(
    frame: Frame,
    rule: LabelRule,
    predicted_label: str | npt.ArrayLike | None,
    scores: npt.ArrayLike | None,
    probability_threshold: float | None,
    label_headers: Sequence[Any] | None,
    notes: list[str],
) -> tuple[npt.NDArray[np.bool_] | None, float | None]:
    if isinstance(predicted_label, str):
        frame.require(predicted_label, "predicted_label")
        return rule.positive_of(frame, predicted_label, union_with_label=True), None
    label_max = frame.series(rule.column).max() if rule.type == "continuous" else None
    if predicted_label is not None:
        arr = np.asarray(predicted_label)
        _check_length(arr, frame, "predicted_label")
        return rule.positive_array(arr, label_max), None
    if scores is None:
        return None, None
    s = np.asarray(scores, dtype=np.float64)
    _check_length(s, frame, "scores")
    if s.ndim == 2:  # one column per class: the arg-max is the predicted label
        labels: npt.NDArray[Any] = s.argmax(axis=1)
        threshold = None
    else:
        if probability_threshold is None:
            probability_threshold = 0.5
            notes.append(
                "probability_threshold was not given; Clarify's default 0.5 was used. Pass the decision "
                "threshold validated for the model, or post-training metrics describe a model nobody runs."
            )
        threshold = float(probability_threshold)
        labels = (s > threshold).astype(np.int64)
    if label_headers:
        headers = np.asarray(list(label_headers), dtype=object)
        labels = headers[labels]
    return rule.positive_array(labels, label_max), threshold


def _check_length(arr: npt.NDArray[Any], frame: Frame, what: str) -> None:
    if len(arr) != frame.n_rows:
        raise ValidationError(
            f"{len(arr)} {what} for {frame.n_rows} rows",
            obj="clarify",
            field=what,
            fix="pass one prediction per row of the data, in the same order",
        )


def _prepare(
    frame: Frame,
    label: str,
    label_values_or_threshold: Any,
    group_variable: str | None,
    predicted_label: str | npt.ArrayLike | None,
    scores: npt.ArrayLike | None,
    probability_threshold: float | None,
    label_headers: Sequence[Any] | None,
    label_type: ColumnType | None,
    full_distribution: bool,
    compat: bool,
    notes: list[str],
) -> tuple[_Prepared, float | None]:
    rule = label_rule(frame, label, label_values_or_threshold, explicit=label_type, compat=compat)
    s = frame.series(label)
    nulls = int(s.isna().sum())
    if nulls and not compat:
        raise ValidationError(
            f"{nulls} rows have no label",
            obj=frame.name,
            field=label,
            fix="drop or fill the rows with a missing label before measuring bias",
        )
    y_pos = rule.positive(frame)
    p_pos, threshold = _predicted_positive(
        frame, rule, predicted_label, scores, probability_threshold, label_headers, notes
    )
    if full_distribution and rule.type == "categorical":
        l_codes, uniques = frame.factorize(label)
        positive = match_values(uniques, rule.values)
        if (l_codes < 0).any():
            l_codes = np.where(l_codes < 0, len(uniques), l_codes)
            positive = np.append(positive, False)
    else:
        l_codes = y_pos.astype(np.int64)
        positive = np.array([False, True])
    n_l = len(positive)
    if group_variable is not None:
        frame.require(group_variable, "group_variable")
        g_codes, g_uniques = frame.factorize(group_variable)
        n_g = len(g_uniques) + int((g_codes < 0).any())
        g_codes = np.where(g_codes < 0, len(g_uniques), g_codes)
    else:
        g_codes = np.zeros(frame.n_rows, dtype=np.int64)
        n_g = 1
    p = p_pos.astype(np.int64) if p_pos is not None else np.zeros(frame.n_rows, dtype=np.int64)
    base = (g_codes * n_l + l_codes) * 2 + p
    prepared = _Prepared(frame, rule, y_pos, p_pos, positive, base, (n_g, n_l, 2), group_variable is not None)
    return prepared, threshold


def _ft_features(
    frame: Frame,
    options: FlipTestOptions,
    drop: set[str],
) -> tuple[list[str], list[str]]:
    if options.features is not None:
        for c in options.features:
            frame.require(c, "flip_test.features")
        cols = list(options.features)
    else:
        cols = [c for c in frame.columns if c not in drop]
    bad = [c for c in cols if frame.kind(c) not in ("bool", "int", "float")]
    return cols, bad


def bias_report(
    data: FrameLike | Frame,
    *,
    label: str,
    label_values_or_threshold: Any,
    facets: Sequence[Facet | str],
    group_variable: str | None = None,
    predicted_label: str | npt.ArrayLike | None = None,
    scores: npt.ArrayLike | None = None,
    probability_threshold: float | None = None,
    label_headers: Sequence[Any] | None = None,
    pre_training: Methods = "all",
    post_training: Methods = "all",
    label_type: ColumnType | None = None,
    label_distribution: Literal["binary", "full"] = "binary",
    excluded_columns: Sequence[str] = (),
    compat: bool | str | None = False,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    flip_test_options: FlipTestOptions | None = None,
) -> BiasResult:
    """Pre- and post-training bias metrics of every facet, from one count table per facet.

    Post-training metrics need predictions: `predicted_label` (a column or an array in label space) or
    `scores` (probabilities; predicted label = 1 when score > `probability_threshold`). With
    `post_training="all"` and no predictions, post-training is skipped with a note.
    """
    t0 = time.perf_counter()
    compat_mode = normalize_compat(compat)
    frame = data if isinstance(data, Frame) else Frame(data)
    notes: list[str] = []
    full = label_distribution == "full"
    prep, threshold = _prepare(
        frame,
        label,
        label_values_or_threshold,
        group_variable,
        predicted_label,
        scores,
        probability_threshold,
        label_headers,
        label_type,
        full,
        compat_mode,
        notes,
    )
    pre_codes = resolve_methods(pre_training, "pre")
    post_requested = post_training
    if prep.p_pos is None:
        if post_training is not None and post_training != "all":
            raise ValidationError(
                "post-training metrics need predictions",
                obj="analysis_config",
                field="methods.post_training_bias",
                fix="pass a model, a predicted_label column or scores, or remove post_training_bias",
            )
        if post_training == "all" and pre_training is None:
            raise ValidationError(
                "post-training metrics need predictions and no pre-training metrics were asked for",
                obj="analysis_config",
                field="methods.post_training_bias",
                fix="pass a model, a predicted_label column or scores",
            )
        if post_training is not None:
            notes.append("post-training metrics skipped: no predictions (pass scores or predicted_label)")
        post_requested = None
    post_codes = resolve_methods(post_requested, "post")
    explicit = set()
    for m in (pre_training, post_requested):
        if m is not None and m != "all":
            explicit |= {m} if isinstance(m, str) else set(m)
    facet_specs = [f if isinstance(f, Facet) else Facet(f) for f in facets]
    if not facet_specs:
        raise ValidationError(
            "no facet to analyse", obj="analysis_config", field="facet", fix="add at least one facet entry"
        )
    facet_columns = {c for f in facet_specs for c in ((f.name,) if isinstance(f.name, str) else f.name)}
    if not prep.has_group:
        missing = sorted(explicit & GROUP_METRICS)
        if missing and not compat_mode:
            hint = _hint(frame, facet_specs[0], prep.y_pos, [label, *facet_columns, *excluded_columns])
            raise ValidationError(
                f"{', '.join(missing)} condition on a group variable, and none was given",
                obj="analysis_config",
                field="group_variable",
                fix=(
                    f"set group_variable to a column to condition on (suggested: {hint!r})"
                    if hint
                    else "set group_variable to a categorical column to condition on"
                )
                + f", or remove {', '.join(missing)} from the methods",
            )
        if not compat_mode:
            skipped = [c for c in (*pre_codes, *post_codes) if c in GROUP_METRICS]
            if skipped:
                pre_codes = [c for c in pre_codes if c not in GROUP_METRICS]
                post_codes = [c for c in post_codes if c not in GROUP_METRICS]
                hint = _hint(frame, facet_specs[0], prep.y_pos, [label, *facet_columns, *excluded_columns])
                notes.append(
                    f"{' and '.join(skipped)} skipped: no group_variable was given"
                    + (f" (suggested: {hint!r})" if hint else "")
                    + ". Clarify would report them as null with an error."
                )
    t_prep = time.perf_counter()
    pred_col = predicted_label if isinstance(predicted_label, str) else None
    pre_facets: dict[str, list[FacetResult]] = {}
    post_facets: dict[str, list[FacetResult]] = {}
    performance: dict[str, PerformanceTable] = {}
    flip_tests: dict[str, dict[str, Any]] = {}
    t_ft = 0.0
    for spec in facet_specs:
        groups = facet_groups(
            frame, spec.name, spec.value_or_threshold, explicit=spec.type, compat=compat_mode
        )
        counts = build_counts(
            groups.atoms, groups.n_atoms, prep.base, int(np.prod(prep.tail)), prep.tail, prep.positive
        )
        masks = np.stack([s.mask for s in groups.selections]) if groups.selections else np.zeros((0, 0), bool)
        d_cells = np.moveaxis(np.tensordot(counts.cells, masks.astype(np.int64), axes=([0], [1])), -1, 0)
        total = counts.cells.sum(axis=0)
        n_d = d_cells.sum(axis=(1, 2, 3))
        n_a = int(total.sum()) - n_d
        if not compat_mode:
            for sel, nd, na in zip(groups.selections, n_d.tolist(), n_a.tolist(), strict=True):
                if nd == 0 or na == 0:
                    raise ValidationError(
                        f"facet group {sel.name!r} has {nd} rows and the rest has {na}",
                        obj=f"facet {groups.key}",
                        field="value_or_threshold",
                        fix=f"choose values that select some but not all rows (values present: "
                        f"{', '.join(groups.atom_names[:12])})",
                    )
        pair = Pair.from_cells(
            d_cells,
            np.broadcast_to(total, d_cells.shape),
            prep.positive,
            compat=compat_mode,
            has_group_variable=prep.has_group,
            full_distribution=full,
        )
        computed: dict[str, Q] = {}
        for code in (*pre_codes, *post_codes):
            info = METRICS[code]
            if info.fn is None:
                continue
            q = info.fn(pair)
            if info.uses_facet and not (compat_mode and code in GROUP_METRICS):
                q = flag(q, n_a == 0, EMPTY_REST)
                q = flag(q, n_d == 0, EMPTY_FACET)
            if code in GROUP_METRICS and not prep.has_group:
                q = flag(q, np.ones(q.value.shape, bool), NO_GROUP_VARIABLE)
            computed[code] = q
        intervals: dict[str, Any] = {}
        if bootstrap > 0:
            fns = {c: METRICS[c].fn for c in computed if METRICS[c].fn is not None}
            intervals = bootstrap_intervals(
                counts.cells,
                prep.positive,
                masks,
                {c: f for c, f in fns.items() if f is not None},
                n_boot=bootstrap,
                confidence=confidence,
                seed=seed,
                compat=compat_mode,
                has_group_variable=prep.has_group,
                full_distribution=full,
            )
        ft_values: list[tuple[float | None, str | None]] = []
        if "FT" in post_codes and prep.p_pos is not None:
            t = time.perf_counter()
            ft_values, ft_info = _run_flip_test(
                frame,
                groups,
                prep.p_pos,
                flip_test_options or FlipTestOptions(),
                compat_mode,
                drop={label, *groups.columns, *excluded_columns, *([pred_col] if pred_col else [])},
            )
            flip_tests[groups.key] = ft_info
            t_ft += time.perf_counter() - t

        def entries(
            codes: list[str],
            s_idx: int,
            computed: dict[str, Q] = computed,
            intervals: dict[str, Any] = intervals,
            ft_values: list[tuple[float | None, str | None]] = ft_values,
        ) -> list[MetricValue]:
            out = []
            for code in codes:
                info = METRICS[code]
                if code == "FT":
                    value, error = ft_values[s_idx]
                    out.append(MetricValue(code, info.description, value, error))
                    continue
                q = computed[code]
                c = int(q.code[s_idx])
                v = float(q.value[s_idx]) if c == 0 else None
                mv = MetricValue(code, info.description, v, MESSAGES.get(c) if c else None)
                if code in intervals:
                    iv = intervals[code]
                    lo, hi = float(iv.low[s_idx]), float(iv.high[s_idx])
                    mv.ci = (None if np.isnan(lo) else lo, None if np.isnan(hi) else hi)
                    mv.ci_undefined_share = float(iv.undefined[s_idx])
                out.append(mv)
            return out

        if pre_codes:
            pre_facets[groups.key] = [
                FacetResult(sel.name, entries(pre_codes, i), int(n_d[i]), int(n_a[i]))
                for i, sel in enumerate(groups.selections)
            ]
        if post_codes:
            post_facets[groups.key] = [
                FacetResult(sel.name, entries(post_codes, i), int(n_d[i]), int(n_a[i]))
                for i, sel in enumerate(groups.selections)
            ]
        performance[groups.key] = performance_by_group(
            groups.key, counts.cells, prep.positive, groups.atom_names, has_predictions=prep.p_pos is not None
        )
    t_end = time.perf_counter()
    description = prep.rule.description(frame)
    return BiasResult(
        pre_training=StageResult(label, description, pre_facets) if pre_codes else None,
        post_training=StageResult(label, description, post_facets) if post_codes else None,
        performance=performance,
        notes=notes,
        compat=compat_mode,
        n_rows=frame.n_rows,
        probability_threshold=threshold,
        bootstrap={"n_boot": bootstrap, "confidence": confidence, "seed": seed} if bootstrap > 0 else None,
        flip_tests=flip_tests,
        timings={"prepare": t_prep - t0, "metrics": t_end - t_prep - t_ft, "flip_test": t_ft},
    )


def _hint(frame: Frame, facet: Facet, y_pos: npt.NDArray[np.bool_], exclude: list[str]) -> str | None:
    groups = facet_groups(frame, facet.name, facet.value_or_threshold, explicit=facet.type)
    if not groups.selections:
        return None
    return suggest_group_variable(frame, groups.row_mask(groups.selections[0]), y_pos, exclude)


def _run_flip_test(
    frame: Frame,
    groups: FacetGroups,
    p_pos: npt.NDArray[np.bool_],
    options: FlipTestOptions,
    compat: bool,
    drop: set[str],
) -> tuple[list[tuple[float | None, str | None]], dict[str, Any]]:
    cols, bad = _ft_features(frame, options, drop)
    if bad or not cols:
        error = (
            "FlipTest does not support non-numeric columns"
            + ("" if compat else f" ({', '.join(bad[:8])}); encode them or list numeric flip_test.features")
            if bad
            else "FlipTest needs at least one feature column"
        )
        return [(None, error)] * len(groups.selections), {"error": error, "features": cols}
    n = frame.n_rows
    cap = None if compat else options.max_rows
    idx = None
    if cap is not None and n > cap:
        idx = np.sort(np.random.default_rng(options.seed).choice(n, size=cap, replace=False))
    x = frame.numeric_matrix(cols)
    atoms = groups.atoms
    pp = p_pos
    if idx is not None:
        x, atoms, pp = x[idx], atoms[idx], pp[idx]
    results: list[tuple[float | None, str | None]] = []
    details = []
    for sel in groups.selections:
        r = flip_test(x, sel.mask[atoms], pp, compat=compat, standardize=options.standardize)
        results.append((r.value, r.error))
        details.append(
            {"value_or_threshold": sel.name, "f_plus": r.f_plus, "f_minus": r.f_minus, "n_d": r.n_d, "k": r.k}
        )
    info = {
        "features": cols,
        "rows_used": len(pp),
        "sampled": idx is not None,
        "standardize": options.standardize,
        "sign": "smclarify (model 1 & neighbour 0 counts positive)" if compat else "docs: (F+ - F-) / n_d",
        "selections": details,
    }
    return results, info
