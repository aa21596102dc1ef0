"""Labels, facets and groups: which rows are positive, which rows are facet *d*, and the count table.

Everything row-level happens here, once: the label (and predicted label) is binarised, each facet is turned
into integer "atoms" (one per category, or in/out of a threshold interval, or one per combination of
several columns), and one `np.bincount` produces the count table `cells[atom, group, label, predicted]`.
Every metric except FT is arithmetic on that table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from tideml.clarify._frame import Frame
from tideml.errors import ValidationError

__all__ = [
    "ColumnType",
    "CountTable",
    "FacetGroups",
    "FacetSelection",
    "LabelRule",
    "build_counts",
    "facet_groups",
    "infer_column_type",
    "label_rule",
]

ColumnType = Literal["categorical", "continuous"]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
UNIQUENESS_THRESHOLD = 0.05


# -- column types ------------------------------------------------------------------------------------
def infer_column_type(
    frame: Frame,
    column: str,
    values: Sequence[Any] | float | int | str | None,
    *,
    explicit: ColumnType | None = None,
    compat: bool = False,
) -> ColumnType:
    """Categorical or continuous: explicit type, else dtype rules (or smclarify's heuristic when `compat`).

    Default rules: bool, category and string are categorical; float is continuous (unless several values
    are listed); integer is categorical unless the threshold is given as a bare number (not a list).
    """
    if explicit is not None:
        return explicit
    kind = frame.kind(column)
    listed = isinstance(values, list | tuple)
    if compat:
        return _smclarify_type(frame, column, values)
    if kind in ("bool", "category", "string"):
        return "categorical"
    if kind == "float":
        return "categorical" if listed and len(values) > 1 else "continuous"  # type: ignore[arg-type]
    return "continuous" if values is not None and not listed else "categorical"


def _smclarify_type(frame: Frame, column: str, values: Any) -> ColumnType:
    """smclarify 0.5 `series_datatype`: category/several values → categorical; float → continuous;
    integers (or integer strings) → continuous when nunique / count ≥ 0.05."""
    s = frame.series(column)
    count = int(s.count())
    fraction = s.nunique() / count if count else 0.0
    if isinstance(s.dtype, pd.CategoricalDtype) or (isinstance(values, list | tuple) and len(values) > 1):
        return "categorical"
    kind = frame.kind(column)
    if kind == "string":
        try:
            s.astype("int64")
        except (ValueError, TypeError):
            return "categorical"
        return "continuous" if fraction >= UNIQUENESS_THRESHOLD else "categorical"
    if kind == "float":
        return "continuous"
    if kind == "int":
        return "continuous" if fraction >= UNIQUENESS_THRESHOLD else "categorical"
    return "categorical"


# -- value matching ------------------------------------------------------------------------------------
def _loose_equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if str(a) == str(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        sa, sb = str(a).lower(), str(b).lower()
        truthy = {"true", "1", "1.0"}
        return (sa in truthy) == (sb in truthy) and {sa, sb} <= truthy | {"false", "0", "0.0"}
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def match_values(uniques: Sequence[Any], wanted: Sequence[Any]) -> BoolArray:
    """Which of `uniques` equal one of `wanted`; values are coerced (1 ~ "1" ~ 1.0 ~ True) when no
    exact match exists, as smclarify does when the config's value type differs from the column's."""
    mask = np.zeros(len(uniques), dtype=bool)
    for w in wanted:
        hits = np.array([_same(u, w) for u in uniques], dtype=bool)
        if not hits.any():
            hits = np.array([_loose_equal(u, w) for u in uniques], dtype=bool)
        mask |= hits
    return mask


def _same(u: Any, w: Any) -> bool:
    if u is None or w is None:
        return False
    try:
        return bool(u == w) and (isinstance(u, str) == isinstance(w, str))
    except (TypeError, ValueError):
        return False


def _interval_breaks(max_value: Any, thresholds: Sequence[Any], compat: bool) -> list[Any]:
    breaks = list(thresholds)
    present = abs(max_value) in breaks if compat else max_value in breaks  # smclarify checks abs(max)
    if not present:
        breaks.append(max_value)
    return sorted(breaks)


def _interval_names(breaks: Sequence[Any]) -> str:
    if len(breaks) < 2:
        return ""
    return ",".join(str(iv) for iv in pd.IntervalIndex.from_breaks(list(breaks)))


def _in_intervals(x: npt.NDArray[np.float64], breaks: Sequence[Any]) -> BoolArray:
    if len(breaks) < 2:
        return np.zeros(x.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        return (x > float(breaks[0])) & (x <= float(breaks[-1]))


def _thresholds(values: Any, obj: str, field_name: str) -> list[Any]:
    raw = list(values) if isinstance(values, list | tuple) else [values]
    out: list[Any] = []
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, int | float):
            try:
                v = float(v)
            except (TypeError, ValueError) as exc:
                raise ValidationError(
                    f"{v!r} is not a number, but the column is continuous",
                    obj=obj,
                    field=field_name,
                    fix="give one numeric threshold, or declare the column categorical",
                ) from exc
        out.append(v)
    if not out:
        raise ValidationError(
            "no threshold given for a continuous column",
            obj=obj,
            field=field_name,
            fix="give a numeric threshold: rows with a value above it form the group",
        )
    return out


# -- labels ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelRule:
    """How a label (or predicted label) column is collapsed to positive / negative."""

    column: str
    type: ColumnType
    values: tuple[Any, ...] = ()
    thresholds: tuple[Any, ...] = ()
    compat: bool = False

    def description(self, frame: Frame) -> str:
        """`label_value_or_threshold` as Clarify writes it: comma-joined values or interval strings."""
        if self.type == "categorical":
            return ",".join(str(v) for v in self.values)
        s = frame.series(self.column)
        return _interval_names(_interval_breaks(s.max(), self.thresholds, self.compat))

    def positive(self, frame: Frame) -> BoolArray:
        """Boolean positive flag of every row of the label column."""
        return self.positive_of(frame, self.column)

    def positive_of(self, frame: Frame, column: str, *, union_with_label: bool = False) -> BoolArray:
        """Positive flag of `column` under this rule (predicted labels: breaks over label + prediction)."""
        if self.type == "categorical":
            codes, uniques = frame.factorize(column)
            hit = match_values(uniques, self.values)
            return np.where(codes >= 0, hit[np.maximum(codes, 0)], False) if len(hit) else codes < -1
        x = frame.numeric(column)
        top = frame.series(column).max()
        if union_with_label:
            top = max(top, frame.series(self.column).max())
        return _in_intervals(x, _interval_breaks(top, self.thresholds, self.compat))

    def positive_array(self, values: npt.ArrayLike, label_max: Any) -> BoolArray:
        """Positive flag for an array of predicted labels given outside the frame."""
        arr = np.asarray(values)
        if self.type == "categorical":
            uniques, inverse = np.unique(arr, return_inverse=True)
            hit = match_values([u.item() if isinstance(u, np.generic) else u for u in uniques], self.values)
            return hit[inverse.reshape(arr.shape)]
        x = arr.astype(np.float64)
        top = max(label_max, arr.max()) if arr.size else label_max
        return _in_intervals(x, _interval_breaks(top, self.thresholds, self.compat))


def label_rule(
    frame: Frame,
    column: str,
    values_or_threshold: Any,
    *,
    explicit: ColumnType | None = None,
    compat: bool = False,
) -> LabelRule:
    """Resolve `label_values_or_threshold` against the label column."""
    frame.require(column, "label")
    if values_or_threshold is None or (isinstance(values_or_threshold, list) and not values_or_threshold):
        raise ValidationError(
            "no positive label values or threshold given",
            obj="analysis_config",
            field="label_values_or_threshold",
            fix="list the label values that count as the positive outcome, e.g. [0]",
        )
    kind = infer_column_type(frame, column, values_or_threshold, explicit=explicit, compat=compat)
    if kind == "continuous":
        thresholds = _thresholds(values_or_threshold, "analysis_config", "label_values_or_threshold")
        return LabelRule(column, kind, thresholds=tuple(thresholds), compat=compat)
    vals = values_or_threshold if isinstance(values_or_threshold, list | tuple) else [values_or_threshold]
    return LabelRule(column, kind, values=tuple(vals), compat=compat)


# -- facets ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FacetSelection:
    """One facet *d*: its report name (`value_or_threshold`) and which atoms it contains."""

    name: str
    mask: BoolArray


@dataclass
class FacetGroups:
    """A facet turned into per-row atoms and the selections to analyse."""

    key: str
    columns: tuple[str, ...]
    type: ColumnType
    atoms: IntArray
    atom_names: list[str]
    selections: list[FacetSelection]
    n_atoms: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_atoms = len(self.atom_names)

    def row_mask(self, selection: FacetSelection) -> BoolArray:
        """Boolean facet-*d* flag per row for one selection."""
        return selection.mask[self.atoms]


def _categorical_atoms(frame: Frame, column: str, compat: bool) -> tuple[IntArray, list[Any], bool]:
    codes, uniques = frame.factorize(column, sort=not compat)
    has_null = bool((codes < 0).any())
    if has_null:
        codes = np.where(codes < 0, len(uniques), codes)
    return codes, uniques, has_null


def facet_groups(
    frame: Frame,
    columns: str | Sequence[str],
    value_or_threshold: Any = None,
    *,
    explicit: ColumnType | None = None,
    compat: bool = False,
) -> FacetGroups:
    """Resolve one `facet` entry: values, threshold, one-vs-rest, or an intersection of several columns."""
    cols = (columns,) if isinstance(columns, str) else tuple(columns)
    for c in cols:
        frame.require(c, "facet.name_or_index")
    if len(cols) > 1:
        return _intersectional(frame, cols, value_or_threshold)
    column = cols[0]
    given = value_or_threshold
    if isinstance(given, list | tuple) and not given:
        given = None
    kind = infer_column_type(frame, column, given, explicit=explicit, compat=compat)
    if kind == "continuous":
        if given is None:
            raise ValidationError(
                "a continuous facet needs a threshold",
                obj=f"facet {column}",
                field="value_or_threshold",
                fix="give a numeric threshold (rows above it form d), or declare the facet categorical",
            )
        thresholds = _thresholds(given, f"facet {column}", "value_or_threshold")
        breaks = _interval_breaks(frame.series(column).max(), thresholds, compat)
        inside = _in_intervals(frame.numeric(column), breaks)
        name = _interval_names(breaks)
        return FacetGroups(
            key=column,
            columns=cols,
            type=kind,
            atoms=inside.astype(np.int64),
            atom_names=[f"not {name}" if name else "all", name],
            selections=[FacetSelection(name, np.array([False, True]))],
        )
    codes, uniques, has_null = _categorical_atoms(frame, column, compat)
    names = [str(u) for u in uniques] + (["<null>"] if has_null else [])
    n_atoms = len(names)
    if given is None:
        selections = []
        for i, u in enumerate(uniques):
            mask = np.zeros(n_atoms, dtype=bool)
            mask[i] = True
            selections.append(FacetSelection(str(u), mask))
    else:
        wanted = list(given) if isinstance(given, list | tuple) else [given]
        hit = match_values(uniques, wanted)
        mask = np.concatenate([hit, np.zeros(n_atoms - len(hit), dtype=bool)])
        selections = [FacetSelection(",".join(str(v) for v in wanted), mask)]
    return FacetGroups(column, cols, kind, codes, names, selections)


def _intersectional(frame: Frame, cols: tuple[str, ...], given: Any) -> FacetGroups:
    """Cartesian product of several categorical columns; each combination is one atom."""
    combined = np.zeros(frame.n_rows, dtype=np.int64)
    parts: list[list[str]] = []
    for c in cols:
        codes, uniques, has_null = _categorical_atoms(frame, c, compat=False)
        names = [str(u) for u in uniques] + (["<null>"] if has_null else [])
        combined = combined * len(names) + codes
        parts.append(names)
    present, atoms = np.unique(combined, return_inverse=True)
    atom_names: list[str] = []
    atom_tuples: list[tuple[str, ...]] = []
    for code in present.tolist():
        combo: list[str] = []
        for names in reversed(parts):
            combo.append(names[code % len(names)])
            code //= len(names)
        combo.reverse()
        atom_tuples.append(tuple(combo))
        atom_names.append(" & ".join(combo))
    key = " & ".join(cols)
    n_atoms = len(atom_names)
    if given is None or (isinstance(given, list | tuple) and not given):
        selections = []
        for i, nm in enumerate(atom_names):
            m = np.zeros(n_atoms, dtype=bool)
            m[i] = True
            selections.append(FacetSelection(nm, m))
    else:
        combos = [given] if given and not isinstance(given[0], list | tuple) else list(given)
        mask = np.zeros(n_atoms, dtype=bool)
        for combo in combos:
            if len(combo) != len(cols):
                raise ValidationError(
                    f"combination {combo!r} has {len(combo)} values for {len(cols)} columns",
                    obj=f"facet {key}",
                    field="value_or_threshold",
                    fix="give one value per facet column, e.g. [['Female', 'CA']]",
                )
            for i, tup in enumerate(atom_tuples):
                if all(_loose_equal(t, w) for t, w in zip(tup, combo, strict=True)):
                    mask[i] = True
        name = ",".join(" & ".join(str(v) for v in combo) for combo in combos)
        selections = [FacetSelection(name, mask)]
    return FacetGroups(key, cols, "categorical", atoms.astype(np.int64), atom_names, selections)


# -- the count table -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CountTable:
    """`cells[atom, group, label_category, predicted_positive]` and which label categories are positive."""

    cells: IntArray
    positive: BoolArray

    @property
    def n(self) -> int:
        return int(self.cells.sum())


def build_counts(
    atoms: IntArray,
    n_atoms: int,
    base: IntArray,
    n_base: int,
    shape_tail: tuple[int, int, int],
    positive: BoolArray,
) -> CountTable:
    """One bincount over `atom * n_base + base`, where `base = (group * L + label) * 2 + predicted`."""
    flat = np.bincount(atoms * n_base + base, minlength=n_atoms * n_base)
    return CountTable(flat.reshape((n_atoms, *shape_tail)).astype(np.int64, copy=False), positive)
