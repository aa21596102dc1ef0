"""Vectorised arithmetic with Clarify's division rules and per-element error reasons.

A metric is computed for many facet selections (and bootstrap replicates) at once, so every value is an
array. Beside the value, each element carries a reason code: 0 means a number (finite or ±inf), any other
code means `value: null` in the report with the message of `MESSAGES[code]`. The rules:

- x / 0 with x ≠ 0 is ±inf in both modes (written "Infinity" / "-Infinity").
- 0 / 0 is undefined by default; `compat=True` (smclarify) makes it 0.
- ∞ - ∞ (both terms +inf) is undefined by default; `compat=True` makes it 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALL_FALSE_NEGATIVE",
    "EMPTY_FACET",
    "EMPTY_REST",
    "INF_MINUS_INF",
    "MESSAGES",
    "NO_GROUP_VARIABLE",
    "NO_NEGATIVE",
    "NO_POSITIVE",
    "NO_SHARED_OUTCOME",
    "OK",
    "ZERO_BY_ZERO",
    "FloatArray",
    "IntArray",
    "Q",
    "flag",
    "ratio",
    "sub",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CodeArray = npt.NDArray[np.uint8]

OK = 0
ZERO_BY_ZERO = 1
INF_MINUS_INF = 2
EMPTY_FACET = 3
EMPTY_REST = 4
NO_SHARED_OUTCOME = 5
NO_GROUP_VARIABLE = 6
NO_POSITIVE = 7
NO_NEGATIVE = 8
ALL_FALSE_NEGATIVE = 9

MESSAGES: dict[int, str] = {
    ZERO_BY_ZERO: "undefined: 0/0",
    INF_MINUS_INF: "undefined: Infinity - Infinity",
    EMPTY_FACET: "Facet set is empty",
    EMPTY_REST: "Negated facet set is empty",
    NO_SHARED_OUTCOME: "No instance of common facet found, dataset may be too small",
    NO_GROUP_VARIABLE: "Group variable is empty or not provided",
    NO_POSITIVE: "No positive labels in set",
    NO_NEGATIVE: "No negative labels in set",
    ALL_FALSE_NEGATIVE: (
        "All predicted labels are false negatives. There should be at least one prediction that is not "
        "false negative."
    ),
}


@dataclass(frozen=True)
class Q:
    """A vector of metric values and, per element, a reason code (0 = a number)."""

    value: FloatArray
    code: CodeArray

    @staticmethod
    def of(value: npt.ArrayLike) -> Q:
        """Wrap plain numbers (no error anywhere)."""
        v = np.asarray(value, dtype=np.float64)
        return Q(v, np.zeros(v.shape, dtype=np.uint8))

    def defined(self) -> npt.NDArray[np.bool_]:
        """True where the element is a number (possibly infinite)."""
        return np.asarray(self.code == OK, dtype=np.bool_)


def ratio(num: npt.ArrayLike, den: npt.ArrayLike, compat: bool) -> Q:
    """num / den elementwise: x/0 = ±inf; 0/0 = undefined (or 0 when `compat`)."""
    n = np.asarray(num, dtype=np.float64)
    d = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = n / d
    zz = (n == 0) & (d == 0)
    if compat:
        return Q(np.where(zz, 0.0, v), np.zeros(v.shape, dtype=np.uint8))
    return Q(np.where(zz, np.nan, v), np.where(zz, ZERO_BY_ZERO, OK).astype(np.uint8))


def sub(x: Q, y: Q, compat: bool) -> Q:
    """x - y elementwise; undefined inputs stay undefined; +inf - +inf is undefined (0 when `compat`)."""
    with np.errstate(invalid="ignore"):
        v = x.value - y.value
    both_inf = np.isposinf(x.value) & np.isposinf(y.value)
    code = np.maximum(x.code, y.code)
    if compat:
        return Q(np.where(both_inf, 0.0, v), code)
    both_inf &= code == OK
    return Q(np.where(both_inf, np.nan, v), np.where(both_inf, INF_MINUS_INF, code).astype(np.uint8))


def flag(q: Q, where: npt.ArrayLike, code: int) -> Q:
    """Mark elements as errors with `code` (structural errors override arithmetic ones)."""
    w = np.broadcast_to(np.asarray(where, dtype=bool), q.value.shape)
    return Q(np.where(w, np.nan, q.value), np.where(w, np.uint8(code), q.code).astype(np.uint8))
