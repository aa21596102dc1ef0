"""PNG plots (ROC, PR, calibration, threshold sweep) and a self-contained HTML report.

Plots are drawn from an `Evaluation` alone (its curves are stored downsampled), with matplotlib's Agg
canvas and no global pyplot state, so reports can be re-rendered from the JSON at any time.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tideml.train.evaluate import Evaluation

__all__ = ["evaluation_plots", "render_html", "table_html"]


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=(5.0, 4.0), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(alpha=0.3)
    return fig, ax


def evaluation_plots(evaluation: Evaluation) -> dict[str, bytes]:
    """PNG bytes of the ROC, precision-recall, calibration and threshold-sweep plots (test split)."""
    test = evaluation.test
    plots: dict[str, bytes] = {}

    fig, ax = _figure()
    ax.plot(evaluation.roc_curve.x, evaluation.roc_curve.y, label=f"model (AUC {test.roc_auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (test)")
    ax.legend(loc="lower right")
    plots["roc"] = _png(fig)

    fig, ax = _figure()
    ax.plot(evaluation.pr_curve.x, evaluation.pr_curve.y, label=f"model (AP {test.pr_auc:.3f})")
    ax.axhline(test.base_rate, linestyle="--", color="grey", label=f"base rate {test.base_rate:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve (test)", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    plots["pr"] = _png(fig)

    fig, ax = _figure()
    xs = [b.mean_predicted for b in evaluation.calibration]
    ys = [b.observed_rate for b in evaluation.calibration]
    top = max([*xs, *ys, 0.01]) * 1.05
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect calibration")
    ax.plot(xs, ys, marker="o", label=f"model (Brier {test.brier:.4f})")
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration (test)")
    ax.legend(loc="upper left")
    plots["calibration"] = _png(fig)

    fig, ax = _figure()
    ts = [p.threshold for p in evaluation.sweep]
    ax.plot(ts, [p.precision for p in evaluation.sweep], label="precision")
    ax.plot(ts, [p.recall for p in evaluation.sweep], label="recall")
    ax.plot(ts, [p.f1 for p in evaluation.sweep], label="F1")
    ax.plot(ts, [p.predicted_positive_rate for p in evaluation.sweep], label="flagged share", linestyle=":")
    ax.axvline(evaluation.threshold.value, color="black", linestyle="--", label="chosen on validation")
    ax.set(xlabel="threshold", ylabel="value", title="Threshold sweep (test)", xscale="log", ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize="small")
    plots["threshold_sweep"] = _png(fig)
    return plots


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "-"
    return str(value)


def table_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An HTML table of dict rows (floats to 4 decimals, everything escaped)."""
    if not rows:
        return "<p>(none)</p>"
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in cols) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}.plots img{width:480px;margin:4px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}
"""


def render_html(
    title: str,
    evaluation: Evaluation | None = None,
    *,
    sections: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> str:
    """A self-contained HTML page: the test/validation metrics, the PNG plots inline, and extra sections."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>")
    for note in notes:
        parts.append(f"<p>{html.escape(note)}</p>")
    if evaluation is not None:
        t, v = evaluation.test, evaluation.validation
        choice = evaluation.threshold
        parts.append(
            f"<p>Threshold {choice.value:.4f} chosen on validation by <b>{html.escape(choice.strategy)}</b> "
            f"({html.escape(choice.validation_objective)} {choice.validation_score:.4f}); every number below "
            "the validation row is measured on the held-out test split, which shares no entity with "
            "training.</p>"
        )
        if evaluation.group_thresholds:
            parts.append("<p>Per-group thresholds: " + html.escape(str(evaluation.group_thresholds)) + "</p>")
        metric_rows = []
        for name, m in (("validation", v), ("test", t)):
            ci = "-" if m.roc_auc_ci_low is None else f"[{m.roc_auc_ci_low:.3f}, {m.roc_auc_ci_high:.3f}]"
            metric_rows.append(
                {
                    "split": name,
                    "rows": m.rows,
                    "positives": m.positives,
                    "ROC-AUC": m.roc_auc,
                    "95% CI": ci,
                    "PR-AUC": m.pr_auc,
                    "log loss": m.log_loss,
                    "Brier": m.brier,
                    "F1": m.f1,
                    "precision": m.precision,
                    "recall": m.recall,
                    "accuracy": m.accuracy,
                    "TN/FP/FN/TP": f"{m.confusion.tn}/{m.confusion.fp}/{m.confusion.fn}/{m.confusion.tp}",
                }
            )
        parts.append("<h2>Metrics</h2>" + table_html(metric_rows))
        parts.append("<h2>Plots (test split)</h2><div class='plots'>")
        for name, png in evaluation_plots(evaluation).items():
            data = base64.b64encode(png).decode()
            parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
        parts.append("</div>")
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("</body></html>")
    return "\n".join(parts)
