"""Data-quality checks of a window's statistics against `constraints.json`.

Checks (managed names): `missing_column_check`, `extra_column_check`, `data_type_check` (share of present
values of the baseline's type below `datatype_check_threshold`), `completeness_check` (share of rows with a
value below the feature's `completeness`), `categorical_values_check` (share of values inside `domains` below
`domain_content_threshold`), and tideml's `range_check` (`is_non_negative`, `lower_bound`, `upper_bound`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tideml.monitor.constraints import Constraints
from tideml.monitor.statistics import NUMERIC_TYPES, DatasetStatistics
from tideml.monitor.violations import Violation

__all__ = ["check_data_quality", "out_of_domain"]


def _pct(x: float) -> str:
    return f"{100.0 * x:.4g}%"


def out_of_domain(frequencies: dict[str, int], domains: Iterable[str]) -> dict[str, int]:
    """Values (with counts) that are not in the allowed domain."""
    allowed = set(domains)
    return {v: c for v, c in frequencies.items() if v not in allowed}


def check_data_quality(
    constraints: Constraints,
    window: DatasetStatistics,
    *,
    window_columns: Sequence[str],
    ignore_columns: Iterable[str] = (),
) -> list[Violation]:
    """Every data-quality violation of the window, one per feature and check."""
    cfg = constraints.monitoring_config
    if cfg.evaluate_constraints == "Disabled":
        return []
    ignored = set(ignore_columns)
    present_cols = set(window_columns)
    names = constraints.names
    known = set(names)
    out: list[Violation] = []
    n_window_cols = len([c for c in window_columns if c not in ignored])
    for name in names:
        if name not in present_cols:
            out.append(
                Violation(
                    "missing_column_check",
                    f"There are missing columns in current dataset. Number of columns in current dataset: "
                    f"{n_window_cols}, Number of columns in baseline constraints: {len(names)}. "
                    f"Missing: {name}",
                    feature_name=name,
                )
            )
    for col in window_columns:
        if col not in known and col not in ignored:
            out.append(
                Violation(
                    "extra_column_check",
                    f"There are extra columns in current dataset. Number of columns in current dataset: "
                    f"{n_window_cols}, Number of columns in baseline constraints: {len(names)}. Extra: {col}",
                    feature_name=col,
                )
            )
    for fc in constraints.features:
        stats = window.features.get(fc.name)
        if stats is None or fc.name not in present_cols:
            continue
        if fc.inferred_type != "Unknown" and stats.num_present > 0:
            match = (stats.num_present - stats.num_type_mismatch) / stats.num_present
            if match < cfg.datatype_check_threshold - 1e-12:
                out.append(
                    Violation(
                        "data_type_check",
                        f"Data type match requirement is not met. Expected data type: {fc.inferred_type}, "
                        f"Expected match: {_pct(cfg.datatype_check_threshold)}. Observed: Only {_pct(match)} "
                        f"of data is {fc.inferred_type}.",
                        feature_name=fc.name,
                    )
                )
        if fc.completeness is not None and stats.completeness < fc.completeness - 1e-12:
            out.append(
                Violation(
                    "completeness_check",
                    f"Data completeness requirement is not met. Expected: {_pct(fc.completeness)}, "
                    f"Observed: {_pct(stats.completeness)}",
                    feature_name=fc.name,
                )
            )
        if (
            fc.string_constraints is not None
            and fc.string_constraints.domains
            and stats.frequencies is not None
        ):
            outside = out_of_domain(
                {str(k): v for k, v in stats.frequencies.items()}, fc.string_constraints.domains
            )
            outside_count = sum(outside.values()) + stats.other_count
            present = max(stats.num_present - stats.num_type_mismatch, 0)
            if present:
                inside = 1.0 - outside_count / present
                if inside < cfg.domain_content_threshold - 1e-12:
                    top = sorted(outside.items(), key=lambda kv: -kv[1])[:5]
                    shown = ", ".join(f"{v!r} ({c})" for v, c in top)
                    out.append(
                        Violation(
                            "categorical_values_check",
                            "Data content requirement is not met. Expected: "
                            f"{_pct(cfg.domain_content_threshold)} "
                            f"of values in the baseline domain, Observed: {_pct(inside)}. "
                            f"Values outside the domain: {shown}",
                            feature_name=fc.name,
                        )
                    )
        nc = fc.num_constraints
        if (
            nc is not None
            and fc.inferred_type in NUMERIC_TYPES
            and stats.min is not None
            and stats.max is not None
        ):
            problems: list[str] = []
            if nc.is_non_negative and stats.min < 0:
                problems.append(f"expected non-negative values, observed min {stats.min:.6g}")
            if nc.lower_bound is not None and stats.min < nc.lower_bound:
                problems.append(f"observed min {stats.min:.6g} is below lower_bound {nc.lower_bound:.6g}")
            if nc.upper_bound is not None and stats.max > nc.upper_bound:
                problems.append(f"observed max {stats.max:.6g} is above upper_bound {nc.upper_bound:.6g}")
            if problems:
                out.append(
                    Violation(
                        "range_check",
                        "Value range requirement is not met: " + "; ".join(problems),
                        feature_name=fc.name,
                    )
                )
    return out
