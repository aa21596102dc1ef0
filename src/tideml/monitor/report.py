"""Writing a run: `constraint_violations.json` in the managed layout, the window's `statistics.json`,
tideml's `monitoring_results.json` and a small self-contained HTML report.

The report is built from aggregates only (statistics, sketches, metric values), never from raw rows, so
its size does not grow with the window: a handful of base64 PNGs (matplotlib, Agg) and tables, typically
a few hundred kilobytes for a million-row window.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from tideml.artifacts import atomic_write
from tideml.monitor._jsonfile import json_safe
from tideml.monitor.baseline import dumps
from tideml.monitor.drift import FeatureDrift
from tideml.monitor.run import MonitorResult
from tideml.monitor.statistics import DatasetStatistics, FeatureStatistics

__all__ = ["OUTPUT_FILES", "render_html", "run_files", "write_run_outputs"]

OUTPUT_FILES = {
    "violations": "constraint_violations.json",
    "statistics": "statistics.json",
    "results": "monitoring_results.json",
    "model_quality": "model_quality_statistics.json",
    "report": "report.html",
}


def run_files(
    result: MonitorResult,
    baseline: DatasetStatistics | None = None,
    *,
    title: str = "tideml monitor run",
    max_plots: int = 9,
) -> dict[str, bytes]:
    """File name → bytes of every output of a run."""
    files = {
        OUTPUT_FILES["violations"]: dumps(result.violations_json()),
        OUTPUT_FILES["statistics"]: dumps(result.statistics.to_json()),
        OUTPUT_FILES["results"]: dumps(json_safe(result.results_json())),
        OUTPUT_FILES["report"]: render_html(result, baseline, title=title, max_plots=max_plots).encode(
            "utf-8"
        ),
    }
    if result.model_quality is not None and result.model_quality.statistics is not None:
        files[OUTPUT_FILES["model_quality"]] = dumps(json_safe(result.model_quality.statistics))
    return files


def write_run_outputs(
    out_dir: str | Path,
    result: MonitorResult,
    baseline: DatasetStatistics | None = None,
    *,
    title: str = "tideml monitor run",
) -> dict[str, Path]:
    """Write the outputs into a folder (each file atomically)."""
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for name, data in run_files(result, baseline, title=title).items():
        atomic_write(out / name, data)
        written[name] = out / name
    return written


# -- plots -------------------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_distribution(ax: Any, d: FeatureDrift, b: FeatureStatistics, w: FeatureStatistics) -> bool:
    if d.kind in ("categorical", "discrete") and b.frequencies is not None and w.frequencies is not None:
        fb, fw = b.frequencies, w.frequencies
        nb = max(sum(fb.values()), 1)
        nw = max(sum(fw.values()), 1)
        keys = list(
            dict.fromkeys([*sorted(fb, key=lambda k: -fb[k])[:12], *sorted(fw, key=lambda k: -fw[k])[:4]])
        )
        if d.kind == "discrete":
            keys = sorted(keys, key=float)
        x = np.arange(len(keys))
        ax.bar(x - 0.2, [fb.get(k, 0) / nb for k in keys], 0.4, label="baseline", color="#4f81bd")
        ax.bar(x + 0.2, [fw.get(k, 0) / nw for k in keys], 0.4, label="window", color="#c0504d")
        labels = [(f"{k:g}" if isinstance(k, float) else str(k))[:12] for k in keys]
        rotate = len(keys) > 5
        ax.set_xticks(x, labels, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=7)
        ax.set_ylabel("share", fontsize=8)
    elif b.sketch is not None and w.sketch is not None:
        lo = float(min(b.sketch.quantile(0.005), w.sketch.quantile(0.005)))
        hi = float(max(b.sketch.quantile(0.995), w.sketch.quantile(0.995)))
        if not hi > lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, 31)
        width = edges[1] - edges[0]
        for sk, colour, name in ((b.sketch, "#4f81bd", "baseline"), (w.sketch, "#c0504d", "window")):
            mass = np.diff(sk.cdf(edges))
            ax.step(edges[:-1], mass / width, where="post", color=colour, label=name)
        ax.set_ylabel("density", fontsize=8)
    else:
        return False
    ax.tick_params(labelsize=7)
    flag = "DRIFT  " if d.drifted else ""
    stat = f"{d.statistic:.3g}" if d.statistic is not None else "n/a"
    ax.set_title(f"{flag}{d.name}: {d.method} {stat}", fontsize=9, color="#c0504d" if d.drifted else "black")
    ax.legend(fontsize=7, loc="upper right")
    return True


def _distribution_grid(items: list[tuple[FeatureDrift, FeatureStatistics, FeatureStatistics]]) -> str | None:
    """One figure with a panel per feature: drawn and encoded once, however many features."""
    if not items:
        return None
    plt = _pyplot()
    cols = min(3, len(items))
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.7 * rows), squeeze=False)
    # fixed margins: a layout engine would draw the figure twice, which dominates the report's cost
    fig.subplots_adjust(
        left=0.06, right=0.98, top=1 - 0.35 / rows, bottom=0.85 / (2.7 * rows), hspace=0.75, wspace=0.3
    )
    drawn = 0
    for ax, (d, b, w) in zip(axes.flat, items, strict=False):
        drawn += _draw_distribution(ax, d, b, w)
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    if not drawn:
        plt.close(fig)
        return None
    return _png(fig)


def _roc_plot(result: MonitorResult) -> str | None:
    mq = result.model_quality
    if mq is None or mq.statistics is None:
        return None
    curve = mq.statistics["binary_classification_metrics"].get("receiver_operating_characteristic_curve")
    if not curve:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.2, 3.0), layout="constrained")
    ax.plot(curve["false_positive_rates"], curve["true_positive_rates"], color="#4f81bd")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.7, ls="--")
    ax.set_xlabel("false positive rate", fontsize=8)
    ax.set_ylabel("true positive rate", fontsize=8)
    auc = mq.metric("auc")
    ax.set_title(f"ROC (AUC {auc:.3f})" if auc is not None else "ROC", fontsize=9)
    ax.tick_params(labelsize=7)
    return _png(fig)


def _attribution_plot(result: MonitorResult) -> str | None:
    a = result.attribution
    if a is None:
        return None
    plt = _pyplot()
    top = sorted(a.baseline, key=lambda f: -abs(a.baseline[f]))[:15]
    sb = sum(abs(v) for v in a.baseline.values()) or 1.0
    sw = sum(abs(v) for v in a.window.values()) or 1.0
    fig, ax = plt.subplots(figsize=(5.0, 0.28 * len(top) + 0.9), layout="constrained")
    y = np.arange(len(top))
    ax.barh(y - 0.2, [abs(a.baseline[f]) / sb for f in top], 0.4, label="baseline", color="#4f81bd")
    ax.barh(y + 0.2, [abs(a.window.get(f, 0.0)) / sw for f in top], 0.4, label="window", color="#c0504d")
    ax.set_yticks(y, top, fontsize=7)
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"share of mean |SHAP| — NDCG {a.ndcg:.3f}", fontsize=9)
    return _png(fig)


# -- HTML --------------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞"
        return f"{v:.4g}"
    return html.escape(str(v))


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
th{background:#f4f4f4}.bad{color:#b00;font-weight:600}.ok{color:#070;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid img{border:1px solid #eee}.muted{color:#777;font-size:12px}
"""


def _severity(d: FeatureDrift) -> float:
    if d.statistic is None:
        return -1.0
    if d.method.endswith("_test"):
        return d.threshold / max(d.statistic, 1e-300)
    return d.statistic / max(d.threshold, 1e-12)


def render_html(
    result: MonitorResult,
    baseline: DatasetStatistics | None = None,
    *,
    title: str = "tideml monitor run",
    max_plots: int = 9,
) -> str:
    """The self-contained report of one run."""
    parts: list[str] = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
    ]
    parts.append(f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>")
    status = (
        f"<span class='bad'>{len(result.violations)} violation(s)</span>"
        if result.violations
        else "<span class='ok'>no violation</span>"
    )
    window = ""
    if result.window_start or result.window_end:
        window = f" · window {_fmt(result.window_start)} → {_fmt(result.window_end)}"
    parts.append(f"<p>{status} · {result.rows:,} rows{window}</p>")
    if result.violations:
        parts.append("<h2>Violations</h2><table><tr><th>check</th><th>subject</th><th>description</th></tr>")
        for v in result.violations:
            parts.append(
                f"<tr><td>{html.escape(v.constraint_check_type)}</td><td>{html.escape(v.subject)}</td>"
                f"<td>{html.escape(v.description)}</td></tr>"
            )
        parts.append("</table>")
    if result.drift:
        parts.append(
            "<h2>Drift per feature</h2><table><tr><th>feature</th><th>kind</th><th>method</th>"
            "<th>statistic</th><th>threshold</th><th>PSI</th><th>KS</th><th>KS p</th>"
            "<th>Wasserstein/&sigma;</th><th>JS</th><th>&chi;&sup2; p</th><th>drift</th></tr>"
        )
        for d in sorted(result.drift, key=lambda d: (-int(d.drifted), -_severity(d))):
            m = d.measures
            cells = [
                d.name + (" (prediction)" if d.extra.get("prediction") else ""),
                d.kind,
                d.method,
                d.statistic,
                d.threshold,
                m.psi if m else None,
                m.ks if m else None,
                m.ks_pvalue if m else None,
                m.wasserstein_normed if m else None,
                m.jensen_shannon if m else None,
                m.chi2_pvalue if m else None,
            ]
            verdict = (
                "<span class='bad'>yes</span>"
                if d.drifted
                else ("no" if d.compared else html.escape(d.note or "-"))
            )
            parts.append("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + f"<td>{verdict}</td></tr>")
        parts.append("</table>")
        if baseline is not None and max_plots > 0:
            chosen = sorted(
                (
                    d
                    for d in result.drift
                    if d.compared and d.name in baseline.features and d.name in result.statistics.features
                ),
                key=lambda d: (-int(d.drifted), -(d.measures.psi if d.measures else 0.0)),
            )[:max_plots]
            grid = _distribution_grid(
                [(d, baseline.features[d.name], result.statistics.features[d.name]) for d in chosen]
            )
            if grid:
                parts.append(f"<img src='data:image/png;base64,{grid}'>")
                parts.append(
                    f"<p class='muted'>Distributions of the {len(chosen)} most shifted features (drifted "
                    "first, then by PSI), drawn from the statistics only.</p>"
                )
    mq = result.model_quality
    if mq is not None:
        parts.append("<h2>Model quality</h2>")
        if mq.join is not None:
            j = mq.join
            parts.append(
                f"<p class='muted'>{j.matched:,} labelled of {j.captured:,} captured rows; "
                f"{j.labels_without_capture:,} labels without a capture; threshold {mq.threshold:g}</p>"
            )
        if mq.statistics is not None:
            metrics = mq.statistics["binary_classification_metrics"]
            parts.append("<table><tr><th>metric</th><th>value</th><th>std</th></tr>")
            for name in ("auc", "pr_auc", "f1", "precision", "recall", "accuracy", "false_positive_rate"):
                e = metrics.get(name) or {}
                parts.append(
                    f"<tr><td>{name}</td><td>{_fmt(e.get('value'))}</td><td>{_fmt(e.get('standard_deviation'))}</td></tr>"
                )
            parts.append("</table>")
            roc = _roc_plot(result)
            if roc:
                parts.append(f"<img src='data:image/png;base64,{roc}'>")
    if result.bias is not None and result.bias.comparisons:
        parts.append(
            "<h2>Bias drift</h2><table><tr><th>facet</th><th>value</th><th>metric</th><th>baseline</th>"
            "<th>window</th><th>violated</th></tr>"
        )
        for c in result.bias.comparisons:
            parts.append(
                f"<tr><td>{_fmt(c['facet'])}</td><td>{_fmt(c['facet_value'])}</td><td>{_fmt(c['metric_name'])}</td>"
                f"<td>{_fmt(c['baseline'])}</td><td>{_fmt(c['window'])}</td>"
                f"<td>{'yes' if c['violated'] else 'no'}</td></tr>"
            )
        parts.append("</table>")
    if result.attribution is not None:
        parts.append(
            "<h2>Feature attribution drift</h2>"
            f"<p>NDCG {result.attribution.ndcg:.4f} (threshold {result.attribution.threshold})</p>"
        )
        img = _attribution_plot(result)
        if img:
            parts.append(f"<img src='data:image/png;base64,{img}'>")
    if result.notes:
        parts.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>"
        )
    timing = ", ".join(f"{k} {v:.3f}s" for k, v in result.timings.items())
    parts.append(f"<p class='muted'>timings: {html.escape(timing)}</p></body></html>")
    return "".join(parts)
