"""The self-contained HTML rendering of an AnalysisReport: inline CSS, matplotlib PNGs as data URIs."""

from __future__ import annotations

import base64
import io
import itertools
import math
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tideml.wrangle.analyses import AnalysisReport

__all__ = ["render"]

_TEMPLATE = jinja2.Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Analysis of {{ r.title }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { background: #fff6e0; border-left: 4px solid #e0a800; padding: .5em 1em; }
img { max-width: 100%; } .flag { color: #b00020; font-weight: 600; }
</style></head><body>
<h1>Analysis of {{ r.title }}</h1>
<p>{{ r.rows }} rows, {{ r.columns }} columns
{%- if r.sampled_rows < r.rows %}; plots and models on a seeded sample of {{ r.sampled_rows }} rows
{%- endif %}.
{% if r.target %}Target: <b>{{ r.target }}</b> ({{ r.problem }}).{% endif %}</p>
{% if r.warnings %}<div class="warn"><b>Warnings</b><ul>
{% for w in r.warnings %}<li>{{ w }}</li>{% endfor %}
</ul></div>{% endif %}

<h2>Table summary</h2>
<table><tr><th>column</th><th>type</th><th>count</th><th>missing</th><th>distinct</th>
<th>min</th><th>max</th><th>mean</th><th>std</th><th>most frequent</th><th>least frequent</th></tr>
{% for c in r.summary %}<tr><td>{{ c.column }}</td><td>{{ c.dtype }}</td>
<td class="num">{{ c.count }}</td><td class="num">{{ c.missing }}</td><td class="num">{{ c.distinct }}</td>
<td class="num">{{ fmt(c.min) }}</td><td class="num">{{ fmt(c.max) }}</td>
<td class="num">{{ fmt(c.mean) }}</td><td class="num">{{ fmt(c.std) }}</td>
<td>{% if c.most_frequent %}{{ c.most_frequent.value }} ({{ c.most_frequent.count }}){% endif %}</td>
<td>{% if c.least_frequent %}{{ c.least_frequent.value }} ({{ c.least_frequent.count }}){% endif %}</td></tr>
{% endfor %}</table>

{% if images.balance %}<h2>Class balance</h2>
<img alt="class balance" src="{{ images.balance }}">{% endif %}
{% if images.histograms %}<h2>Histograms</h2>
<img alt="histograms" src="{{ images.histograms }}">{% endif %}
{% if images.correlations %}<h2>Correlations</h2>
<img alt="correlation matrix" src="{{ images.correlations }}">{% endif %}

{% if r.vif %}<h2>Multicollinearity (VIF, clipped at 50; 5 or more is high)</h2>
<table><tr><th>column</th><th>VIF</th><th></th></tr>
{% for v in r.vif %}<tr><td>{{ v.column }}</td><td class="num">{{ fmt(v.vif) }}</td>
<td class="flag">{{ v.note }}</td></tr>{% endfor %}</table>{% endif %}

{% if r.leakage %}<h2>Target leakage
(each feature alone, 3-fold cross-validated {{ r.leakage[0].metric }})</h2>
{% if images.leakage %}<img alt="leakage scores" src="{{ images.leakage }}">{% endif %}
<table><tr><th>column</th><th>score</th><th></th></tr>
{% for v in r.leakage %}<tr><td>{{ v.column }}</td><td class="num">{{ fmt(v.score) }}</td>
<td class="flag">{{ v.flag }}</td></tr>{% endfor %}</table>{% endif %}

{% if r.quick_model %}<h2>Quick model ({{ r.quick_model.model }}, 70/30 split)</h2>
<table>{% for k, v in r.quick_model.items() if k not in ("importances", "model") %}
<tr><th>{{ k }}</th><td class="num">{{ fmt(v) }}</td></tr>{% endfor %}</table>
{% if images.importances %}<img alt="feature importances" src="{{ images.importances }}">{% endif %}
{% endif %}
</body></html>
""",
    autoescape=True,
)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _images(r: AnalysisReport) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    images: dict[str, str] = {}
    if r.class_balance:
        fig = Figure(figsize=(5, 2.5))
        ax = fig.subplots()
        ax.bar(
            [str(c["value"]) for c in r.class_balance], [c["count"] for c in r.class_balance], color="#4c78a8"
        )
        ax.set_ylabel("rows")
        images["balance"] = _png(fig)
    hists = list(r.histograms.items())[:16]
    if hists:
        cols = 4
        rows = math.ceil(len(hists) / cols)
        fig = Figure(figsize=(12, 2.4 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (name, h) in zip(axes.flat, hists, strict=False):
            if h["kind"] == "numeric":
                edges = h["edges"]
                widths = [b - a for a, b in itertools.pairwise(edges)]
                ax.bar(edges[:-1], h["counts"], width=widths, align="edge", color="#4c78a8")
            else:
                ax.bar([str(v)[:10] for v in h["values"]], h["counts"], color="#f58518")
                ax.tick_params(axis="x", labelrotation=60, labelsize=7)
            ax.set_title(name, fontsize=9)
        for ax in list(axes.flat)[len(hists) :]:
            ax.axis("off")
        fig.subplots_adjust(hspace=0.6, wspace=0.3)
        images["histograms"] = _png(fig)
    corr = r.correlations
    if corr.get("matrix"):
        names = corr["columns"]
        size = max(4.0, 0.32 * len(names))
        fig = Figure(figsize=(size + 1, size))
        ax = fig.subplots()
        matrix = [[float("nan") if v is None else v for v in row] for row in corr["matrix"]]
        im = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        fig.colorbar(im, ax=ax, shrink=0.7)
        images["correlations"] = _png(fig)
    for key, items, value_key in (
        ("leakage", r.leakage, "score"),
        ("importances", (r.quick_model or {}).get("importances", []), "importance"),
    ):
        top = list(items)[:25]
        if top:
            fig = Figure(figsize=(7, 0.25 * len(top) + 1))
            ax = fig.subplots()
            ax.barh([i["column"] for i in top][::-1], [i[value_key] for i in top][::-1], color="#54a24b")
            ax.tick_params(axis="y", labelsize=8)
            images[key] = _png(fig)
    return images


def render(report: AnalysisReport) -> str:
    """The report as one HTML document that needs no network."""
    return str(_TEMPLATE.render(r=report, images=_images(report), fmt=_fmt))
