"""Writing an analysis: Clarify's `analysis.json`, tideml's extras, local SHAP values and an HTML report.

Output folder (as Clarify's, plus one file):
- `analysis.json` — Clarify's layout, nothing else in it;
- `tideml_extras.json` — intervals, per-group performance, notes, settings, timings;
- `report.html` — self-contained (plots embedded as base64 PNG), when a report is configured or asked for;
- `explanations_shap/out.csv` — local SHAP values, when `save_local_shap_values` is true.
Every file is written atomically (temp file + rename).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import jinja2

from tideml.artifacts import atomic_write
from tideml.clarify import _plots
from tideml.clarify.job import AnalysisOutput

__all__ = ["dumps_json", "render_html", "write_outputs"]


def dumps_json(data: Any) -> bytes:
    """JSON with 4-space indent (Clarify's style); NaN is never written."""
    return json.dumps(data, indent=4, allow_nan=False, default=_default).encode("utf-8")


def _default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def write_outputs(
    out_dir: str | Path, output: AnalysisOutput, *, html_report: bool = True
) -> dict[str, Path]:
    """Write the output folder; returns name → path of every file written."""
    out = Path(out_dir)
    written: dict[str, Path] = {}
    files: dict[str, bytes] = {
        "analysis.json": dumps_json(output.analysis_json()),
        "tideml_extras.json": dumps_json(output.extras_json()),
    }
    report_cfg = output.config.methods.report
    if html_report or report_cfg is not None:
        name = (report_cfg.name if report_cfg else "report") + ".html"
        files[name] = render_html(output).encode("utf-8")
    shap_cfg = output.config.methods.shap
    if output.explanation is not None and (shap_cfg is None or shap_cfg.save_local_shap_values):
        files["explanations_shap/out.csv"] = output.explanation.local_frame().to_csv(index=False).encode()
    for rel, data in files.items():
        path = out / rel
        atomic_write(path, data)
        written[rel] = path
    return written


_TEMPLATE = jinja2.Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}
th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:6px 10px;margin:6px 0}
.err{color:#a00} img{max-width:100%}
</style></head><body>
<h1>{{ title }}</h1>
<p>{{ n_rows }} rows · label <b>{{ label }}</b> (positive: {{ positive }}) · mode: {{ mode }}
{% if threshold is not none %} · probability threshold {{ threshold }}{% endif %}</p>
<p>Facet <i>d</i> is the selected group; <i>a</i> is every other row. Signs follow Clarify's definitions.</p>
{% for n in notes %}<div class="note">{{ n }}</div>{% endfor %}
{% for stage in stages %}
<h2>{{ stage.title }}</h2>
{% for block in stage.blocks %}
<h3>{{ block.facet }} = {{ block.value }} <small>(n_d = {{ block.n_d }}, n_a = {{ block.n_a }})</small></h3>
<table><tr><th class="l">metric</th><th class="l">description</th><th>value</th><th>interval</th></tr>
{% for m in block.metrics %}<tr><td class="l">{{ m.name }}</td><td class="l">{{ m.description }}</td>
<td{% if m.error %} class="err"{% endif %}>{{ m.shown }}</td><td>{{ m.ci }}</td></tr>{% endfor %}
</table>
<img alt="{{ stage.title }} {{ block.facet }}" src="data:image/png;base64,{{ block.plot }}">
{% endfor %}{% endfor %}
{% if performance %}<h2>Performance by group</h2>
{% for p in performance %}<h3>{{ p.facet }}</h3>
<table><tr>{% for h in p.header %}<th{% if loop.first %} class="l"{% endif %}>{{ h }}</th>{% endfor %}</tr>
{% for r in p.rows %}<tr>{% for c in r %}<td{% if loop.first %} class="l"{% endif %}>{{ c }}</td>
{% endfor %}</tr>
{% endfor %}
</table>{% if p.summary %}<p>{{ p.summary }}</p>{% endif %}
{% if p.plot %}<img alt="performance {{ p.facet }}" src="data:image/png;base64,{{ p.plot }}">{% endif %}
{% endfor %}{% endif %}
{% if explanation %}<h2>Explanations ({{ explanation.method }})</h2>
<p>{{ explanation.rows }} rows · expected value {{ explanation.expected }} · output: {{ explanation.output }}
· aggregation: {{ explanation.agg }}</p>
<img alt="global SHAP" src="data:image/png;base64,{{ explanation.bar }}">
<img alt="SHAP beeswarm" src="data:image/png;base64,{{ explanation.swarm }}">
{% endif %}
</body></html>""",
    autoescape=True,
)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return f"{v:.4g}"


def render_html(output: AnalysisOutput) -> str:
    """The self-contained HTML report."""
    cfg = output.config
    title = cfg.methods.report.title if cfg.methods.report else "Bias and explainability report"
    bias = output.bias
    stages = []
    label, positive, n_rows, threshold = "", "", 0, None
    if bias is not None:
        n_rows, threshold = bias.n_rows, bias.probability_threshold
        for stage_title, stage in (
            ("Pre-training bias", bias.pre_training),
            ("Post-training bias", bias.post_training),
        ):
            if stage is None:
                continue
            label, positive = stage.label, stage.label_value_or_threshold
            blocks = []
            for key, results in stage.facets.items():
                for fr in results:
                    rows = [(m.name, m.value, m.ci) for m in fr.metrics]
                    metrics = [
                        {
                            "name": m.name,
                            "description": m.description,
                            "shown": m.error if m.error else _fmt(m.value),
                            "error": m.error,
                            "ci": "" if m.ci is None else f"[{_fmt(m.ci[0])}, {_fmt(m.ci[1])}]",
                        }
                        for m in fr.metrics
                    ]
                    blocks.append(
                        {
                            "facet": key,
                            "value": fr.value_or_threshold,
                            "n_d": fr.n_d,
                            "n_a": fr.n_a,
                            "metrics": metrics,
                            "plot": _plots.metric_bars(
                                f"{stage_title}: {key} = {fr.value_or_threshold}", rows
                            ),
                        }
                    )
            stages.append({"title": stage_title, "blocks": blocks})
    performance = []
    if bias is not None:
        for key, table in bias.performance.items():
            names = list(table.overall.rates)
            header = ["group", "n", "share", *names]
            table_rows = [
                [g.group, str(g.n), f"{g.share:.3f}", *[_fmt(g.rates[k]) for k in names]]
                for g in [*table.groups, table.overall]
            ]
            summary = "; ".join(
                f"{k}: difference {_fmt(v.get('difference'))}, ratio {_fmt(v.get('ratio'))}"
                for k, v in table.summary.items()
                if k in ("demographic_parity", "equalized_odds")
            )
            shown = [
                k for k in ("selection_rate", "recall", "false_positive_rate", "base_rate") if k in names
            ]
            plot = (
                _plots.performance_bars(
                    [g.group for g in table.groups][:30],
                    {k: [g.rates[k] for g in table.groups][:30] for k in shown},
                    f"Rates by group: {key}",
                )
                if table.groups
                else None
            )
            performance.append(
                {"facet": key, "header": header, "rows": table_rows, "summary": summary, "plot": plot}
            )
    explanation = None
    if output.explanation is not None:
        e = output.explanation
        agg = output.agg_method
        explanation = {
            "method": e.method,
            "rows": e.values.shape[0],
            "expected": _fmt(e.expected_value),
            "output": e.output,
            "agg": agg,
            "bar": _plots.global_bar(e.global_values(agg), f"Global SHAP ({agg})"),  # type: ignore[arg-type]
            "swarm": _plots.beeswarm(e.values, e.data, e.feature_names, "Local SHAP values"),
        }
    notes = list(bias.notes) if bias is not None else []
    notes += output.notes
    rendered: str = _TEMPLATE.render(
        title=title,
        n_rows=n_rows,
        label=label,
        positive=positive,
        mode="smclarify compatibility"
        if bias is not None and bias.compat
        else "tideml (mathematically correct)",
        threshold=threshold,
        notes=[html.unescape(n) for n in notes],
        stages=stages,
        performance=performance,
        explanation=explanation,
    )
    return rendered
