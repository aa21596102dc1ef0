"""Per-group counts of facet *a* and facet *d*, broadcast over selections and bootstrap replicates."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import numpy.typing as npt

from tideml.clarify._arith import FloatArray, IntArray

__all__ = ["Pair", "Side"]


def _f(x: object) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


class Side:
    """Counts of one group: `cells[..., group, label_category, predicted_positive]`."""

    def __init__(self, cells: IntArray, positive: npt.NDArray[np.bool_]) -> None:
        self.cells = cells
        self.positive = positive

    @cached_property
    def by_group(self) -> IntArray:
        """`[..., group, y, ŷ]` with y collapsed to negative (0) / positive (1)."""
        neg = self.cells[..., ~self.positive, :].sum(axis=-2)
        pos = self.cells[..., self.positive, :].sum(axis=-2)
        return np.asarray(np.stack([neg, pos], axis=-2), dtype=np.int64)

    @cached_property
    def table(self) -> IntArray:
        """`[..., y, ŷ]` summed over the group variable."""
        return np.asarray(self.by_group.sum(axis=-3), dtype=np.int64)

    # observed / predicted totals
    @cached_property
    def n(self) -> FloatArray:
        return _f(self.table.sum(axis=(-2, -1)))

    @property
    def n1(self) -> FloatArray:
        """Observed positives n(1)."""
        return _f(self.table[..., 1, :].sum(axis=-1))

    @property
    def n0(self) -> FloatArray:
        """Observed negatives n(0)."""
        return _f(self.table[..., 0, :].sum(axis=-1))

    @property
    def p1(self) -> FloatArray:
        """Predicted positives n'(1)."""
        return _f(self.table[..., :, 1].sum(axis=-1))

    @property
    def p0(self) -> FloatArray:
        """Predicted negatives n'(0)."""
        return _f(self.table[..., :, 0].sum(axis=-1))

    @property
    def tp(self) -> FloatArray:
        return _f(self.table[..., 1, 1])

    @property
    def fp(self) -> FloatArray:
        return _f(self.table[..., 0, 1])

    @property
    def fn(self) -> FloatArray:
        return _f(self.table[..., 1, 0])

    @property
    def tn(self) -> FloatArray:
        return _f(self.table[..., 0, 0])

    @property
    def label_distribution(self) -> FloatArray:
        """Counts per raw label category `[..., L]` (for the full-distribution option)."""
        return _f(self.cells.sum(axis=(-3, -1)))


class Pair:
    """Facet *a* and facet *d* for one or many selections, plus the options that change arithmetic."""

    def __init__(
        self,
        a: Side,
        d: Side,
        *,
        compat: bool = False,
        has_group_variable: bool = False,
        full_distribution: bool = False,
    ) -> None:
        self.a = a
        self.d = d
        self.compat = compat
        self.has_group_variable = has_group_variable
        self.full_distribution = full_distribution

    @staticmethod
    def from_cells(
        d_cells: IntArray,
        total_cells: IntArray,
        positive: npt.NDArray[np.bool_],
        **options: bool,
    ) -> Pair:
        """Build from the cells of *d* and of all rows (*a* = all - *d*)."""
        return Pair(Side(total_cells - d_cells, positive), Side(d_cells, positive), **options)
