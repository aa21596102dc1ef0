"""Matplotlib (Agg) figures for the HTML report, returned as base64 PNG strings."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

__all__ = ["beeswarm", "global_bar", "metric_bars", "performance_bars"]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def metric_bars(
    title: str, rows: Sequence[tuple[str, float | None, tuple[float | None, float | None] | None]]
) -> str:
    """Horizontal bars of metric values (finite only), with bootstrap intervals as error bars."""
    shown = []
    for n, v, ci in rows:
        if v is None or not math.isfinite(v):
            continue
        if n == "DI":  # a ratio with parity at 1: drawn as DI - 1 so that every bar's zero is parity
            ci = (
                None
                if ci is None
                else (None if ci[0] is None else ci[0] - 1, None if ci[1] is None else ci[1] - 1)
            )
            n, v = "DI - 1", v - 1.0
        shown.append((n, v, ci))
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(shown), 3) + 0.8))
    if shown:
        names = [n for n, _, _ in shown]
        vals = np.array([v for _, v, _ in shown], dtype=np.float64)
        y = np.arange(len(shown))
        ax.barh(y, vals, color=["#c0504d" if v < 0 else "#4f81bd" for v in vals])
        lo = [v - ci[0] if ci and ci[0] is not None and math.isfinite(ci[0]) else 0.0 for _, v, ci in shown]
        hi = [ci[1] - v if ci and ci[1] is not None and math.isfinite(ci[1]) else 0.0 for _, v, ci in shown]
        if any(lo) or any(hi):
            ax.errorbar(
                vals, y, xerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="none", ecolor="black", lw=1
            )
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.axvline(0, color="grey", lw=0.8)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def performance_bars(groups: Sequence[str], series: dict[str, Sequence[float | None]], title: str) -> str:
    """Grouped bars: one group of bars per facet group, one bar per rate."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(groups) * max(len(series), 1) / 2 + 2), 3.2))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (name, vals) in enumerate(series.items()):
        v = np.array([np.nan if a is None else a for a in vals], dtype=np.float64)
        ax.bar(x + i * width - 0.4 + width / 2, v, width, label=name)
    ax.set_xticks(x, [g if len(g) < 18 else g[:16] + "…" for g in groups], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncols=min(len(series), 4), loc="upper center", bbox_to_anchor=(0.5, -0.22))
    ax.set_title(title, fontsize=10)
    return _png(fig)


def global_bar(values: dict[str, float], title: str, top: int = 20) -> str:
    """Global SHAP importance bars (largest first)."""
    items = sorted(values.items(), key=lambda kv: -abs(kv[1]))[:top]
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(items), 3) + 0.8))
    ax.barh(np.arange(len(items)), [v for _, v in items], color="#4f81bd")
    ax.set_yticks(np.arange(len(items)), [k for k, _ in items])
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    return _png(fig)


def beeswarm(
    values: npt.NDArray[np.float64],
    data: npt.NDArray[np.float64] | None,
    names: Sequence[str],
    title: str,
    top: int = 15,
    max_points: int = 2000,
    seed: int = 0,
) -> str:
    """SHAP beeswarm: one row per feature, one dot per explained row, coloured by the feature's value."""
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    rows = rng.choice(n, size=max_points, replace=False) if n > max_points else np.arange(n)
    order = np.argsort(-np.abs(values).mean(axis=0))[:top]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.0))
    for pos, j in enumerate(order):
        v = values[rows, j]
        jitter = rng.uniform(-0.3, 0.3, size=len(v))
        if data is not None:
            c = data[rows, j]
            finite = np.isfinite(c)
            lo, hi = (
                (np.nanpercentile(c[finite], 5), np.nanpercentile(c[finite], 95)) if finite.any() else (0, 1)
            )
            colour = np.clip((c - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
            ax.scatter(v, pos + jitter, c=colour, cmap="coolwarm", s=6, alpha=0.7, linewidths=0)
        else:
            ax.scatter(v, pos + jitter, color="#4f81bd", s=6, alpha=0.7, linewidths=0)
    ax.set_yticks(np.arange(len(order)), [names[j] for j in order])
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("SHAP value (colour: low → high feature value)")
    ax.set_title(title, fontsize=10)
    return _png(fig)
