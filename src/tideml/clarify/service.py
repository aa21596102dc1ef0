"""`ClarifyService(ws)`: runs analyses on workspace data and models, stores the reports as artifacts and
records lineage (data + model → Report) through `ws.lineage.action`. The computation lives in
`tideml.clarify.job`; this shell only resolves inputs, persists outputs and records."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xgboost as xgb

from tideml.artifacts import file_sha256
from tideml.clarify.config import AnalysisConfig, ShapConfig, load_config, parse_config
from tideml.clarify.job import AnalysisOutput, load_dataset, run_analysis
from tideml.clarify.model import Model, as_model, load_booster
from tideml.clarify.report import dumps_json, render_html, write_outputs
from tideml.errors import NotFound, ValidationError
from tideml.lineage import ArtifactSpec
from tideml.tables import is_artifact_key, resolve_table

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["ClarifyRun", "ClarifyService"]

_SHA = re.compile(r"(sha256:)?[0-9a-f]{64}")


@dataclass
class ClarifyRun:
    """What a service call produced: the output, where it was written and what it stored."""

    output: AnalysisOutput
    files: dict[str, Path] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    action_id: int | None = None


class ClarifyService:
    """Bias reports and explanations on a workspace, with lineage."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- inputs ---------------------------------------------------------------------------------------
    def resolve_model(self, model: Any) -> tuple[Model, ArtifactSpec]:
        """A model (file path, artifact sha256, Booster or predict function) and its lineage spec."""
        if isinstance(model, str) and _SHA.fullmatch(model) and not Path(model).exists():
            digest = model.removeprefix("sha256:")
            if not self.ws.artifacts.exists(digest):
                raise NotFound(
                    f"no artifact {digest[:12]}… in the workspace",
                    obj="model",
                    fix="pass a model file path, or the sha256 of a stored XGBoost model",
                )
            booster = xgb.Booster()
            try:
                booster.load_model(bytearray(self.ws.artifacts.get(digest)))
            except xgb.core.XGBoostError:
                raise ValidationError(
                    f"artifact {digest[:12]}… is not an XGBoost JSON/UBJSON model",
                    obj="model",
                    fix="pass the sha256 of a model saved with save_model",
                ) from None
            spec = ArtifactSpec("Model", f"sha256:{digest}", sha256=digest, name=f"model {digest[:12]}")
            return Model(booster=booster, name=digest[:12]), spec
        if isinstance(model, str | Path):
            path = Path(model).expanduser().resolve()
            m = Model(booster=load_booster(path), name=path.name)
            digest = file_sha256(path)
            return m, ArtifactSpec("Model", path.as_uri(), sha256=digest, name=path.name)
        m = as_model(model)
        if m.booster is not None:
            raw = bytes(m.booster.save_raw("ubj"))
            ref = self.ws.put_artifact(raw, "application/ubjson")
            return m, ArtifactSpec("Model", ref.uri, sha256=ref.sha256, name=m.name)
        fn = m.predict_fn
        qual = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
        return m, ArtifactSpec("Model", f"python:{qual}", name=m.name)

    def _data(self, data: Any, config: AnalysisConfig) -> tuple[Any, ArtifactSpec]:
        if data is None or (isinstance(data, str | Path) and not is_artifact_key(data)):
            source = data if data is not None else config.dataset_uri
            if source is None:
                raise ValidationError(
                    "no data given", obj="clarify", field="data", fix="pass a file path or a DataFrame"
                )
            # A path goes through load_dataset: the config may join side files (facets, predictions).
            path = Path(str(source).removeprefix("file://")).expanduser().resolve()
            frame = load_dataset(config, path)
            spec = ArtifactSpec("Dataset", path.as_uri(), sha256=file_sha256(path), name=path.name)
            return frame, spec
        table = resolve_table(self.ws, data)  # frames and dataset artifacts: one hash for every service
        return table.frame, table.lineage

    # -- operations -------------------------------------------------------------------------------------
    def bias(
        self,
        data: Any,
        config: AnalysisConfig | dict[str, Any] | str | Path,
        *,
        model: Any = None,
        out_dir: str | Path | None = None,
        compat: bool | str | None = None,
        probability_threshold: float | None = None,
        progress: bool = True,
    ) -> ClarifyRun:
        """Run the config's analyses (bias, and SHAP if configured), write and store the report."""
        cfg = load_config(config) if isinstance(config, str | Path) else parse_config(config)
        return self._run(
            "clarify.bias", cfg, data, model, out_dir, compat, probability_threshold, None, progress
        )

    def explain(
        self,
        data: Any,
        model: Any,
        *,
        config: AnalysisConfig | dict[str, Any] | str | Path | None = None,
        method: str = "auto",
        max_rows: int | None = None,
        out_dir: str | Path | None = None,
        progress: bool = True,
    ) -> ClarifyRun:
        """SHAP explanations only (TreeSHAP for XGBoost by default), written in Clarify's layout."""
        if config is None:
            cfg = parse_config({})
        else:
            cfg = load_config(config) if isinstance(config, str | Path) else parse_config(config)
        shap_cfg = cfg.methods.shap or ShapConfig()
        update: dict[str, Any] = {}
        if method != "auto":
            update["method"] = method
        if max_rows is not None:
            update["max_rows"] = max_rows
        methods = cfg.methods.model_copy(
            update={
                "shap": shap_cfg.model_copy(update=update),
                "pre_training_bias": None,
                "post_training_bias": None,
            }
        )
        cfg = cfg.model_copy(update={"methods": methods})
        return self._run("clarify.explain", cfg, data, model, out_dir, None, None, True, progress)

    def _run(
        self,
        action: str,
        cfg: AnalysisConfig,
        data: Any,
        model: Any,
        out_dir: str | Path | None,
        compat: bool | str | None,
        threshold: float | None,
        explain: bool | None,
        progress: bool,
    ) -> ClarifyRun:
        frame, data_spec = self._data(data, cfg)
        model_obj, model_spec = self.resolve_model(model) if model is not None else (None, None)
        params: dict[str, Any] = {
            "label": cfg.label,
            "facets": [f.model_dump() for f in cfg.facet],
            "group_variable": cfg.group_variable,
            "compat": compat if compat is not None else cfg.compat,
            "methods": cfg.methods.model_dump(exclude_none=True),
        }
        with self.ws.lineage.action(action, parameters=params) as act:
            act.input(data_spec)
            if model_spec is not None:
                act.input(model_spec)
            output = run_analysis(
                cfg,
                frame,
                model=model_obj,
                compat=compat,
                probability_threshold=threshold,
                explain=explain,
                progress=progress,
            )
            files: dict[str, Path] = {}
            if out_dir is not None:
                files = write_outputs(out_dir, output)
            analysis_bytes = dumps_json(output.analysis_json())
            extras_bytes = dumps_json(output.extras_json())
            html_bytes = render_html(output).encode("utf-8")
            refs = {
                "analysis.json": self.ws.put_artifact(analysis_bytes, "application/json"),
                "tideml_extras.json": self.ws.put_artifact(extras_bytes, "application/json"),
                "report.html": self.ws.put_artifact(html_bytes, "text/html"),
            }
            main = refs["analysis.json"]
            act.output(
                ArtifactSpec(
                    "Report",
                    main.uri,
                    sha256=main.sha256,
                    name="analysis.json",
                    properties={
                        "kind": action,
                        "html": refs["report.html"].sha256,
                        "extras": refs["tideml_extras.json"].sha256,
                    },
                )
            )
            summary: dict[str, Any] = {"rows": output.bias.n_rows if output.bias else len(frame)}
            if output.bias is not None and output.bias.probability_threshold is not None:
                summary["probability_threshold"] = output.bias.probability_threshold
            act.set(**summary)
        return ClarifyRun(output, files, {k: r.sha256 for k, r in refs.items()}, act.id)

    def read_report(self, sha256: str) -> dict[str, Any]:
        """A stored `analysis.json` by its sha256."""
        import json

        result: dict[str, Any] = json.loads(self.ws.artifacts.get(sha256))
        return result
