"""Processing jobs on a workspace: fit or load a flow, write Parquet, store the fitted flow, record lineage.

`WrangleService(ws).run(flow, inputs={"claims": "claims.csv"}, output_dir="out")` is the equivalent of a
Data Wrangler flow run as a SageMaker Processing job. The work itself is `tideml.wrangle.engine`; this
shell adds persistence (the flow and the fitted flow as content-addressed artifacts, outputs written
atomically) and lineage (input files, feature groups, flow, fitted flow → output datasets).

Feature-group sources are read through a resolver the caller passes in (`feature_group_reader`), so this
module does not depend on the feature store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq

from tideml.errors import NotFound, ValidationError
from tideml.lineage import ArtifactSpec
from tideml.wrangle.analyses import AnalysisReport, analyze, read_table
from tideml.wrangle.engine import FittedFlow
from tideml.wrangle.io import file_sha256
from tideml.wrangle.spec import FeatureGroupSource, Flow

if TYPE_CHECKING:
    from tideml.artifacts import ArtifactRef
    from tideml.workspace import Workspace

__all__ = ["FeatureGroupReader", "OutputFile", "WrangleRun", "WrangleService"]

FeatureGroupReader = Callable[[FeatureGroupSource], "pl.LazyFrame | pl.DataFrame"]
"""Reads a feature group for a flow source: given the source spec (name, version, features), its rows."""

_JSON = "application/json"


@dataclass(frozen=True)
class OutputFile:
    """One Parquet file a run wrote."""

    name: str
    path: Path
    rows: int
    columns: list[str]
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "path": str(self.path),
            "rows": self.rows,
            "columns": self.columns,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class WrangleRun:
    """What a processing job did: the fitted flow it used or produced, and the files it wrote."""

    flow: str
    flow_sha256: str
    fitted: FittedFlow
    fitted_sha256: str
    fitted_here: bool
    training: bool
    outputs: dict[str, OutputFile] = field(default_factory=dict)
    action_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for `--json` and pipeline step results)."""
        return {
            "flow": self.flow,
            "flow_sha256": self.flow_sha256,
            "fitted_sha256": self.fitted_sha256,
            "fitted_here": self.fitted_here,
            "training": self.training,
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "lineage_action": self.action_id,
        }


def _file_spec(path: Path, name: str) -> ArtifactSpec:
    resolved = path.resolve()
    if resolved.is_file():
        return ArtifactSpec("File", uri=resolved.as_uri(), sha256=file_sha256(resolved), name=name)
    return ArtifactSpec("File", uri=resolved.as_uri(), name=name)


class WrangleService:
    """The workspace's wrangling service (`ws.wrangle`)."""

    def __init__(self, ws: Workspace, *, feature_group_reader: FeatureGroupReader | None = None) -> None:
        self.ws = ws
        self.feature_group_reader = feature_group_reader

    # -- loading -----------------------------------------------------------------------------------
    def load_fitted(
        self, ref: str | os.PathLike[str] | FittedFlow, *, trust_custom_code: bool = False
    ) -> FittedFlow:
        """A fitted flow from a file path, or from the artifact store by `sha256:<hex>`."""
        if isinstance(ref, FittedFlow):
            return ref
        text = str(ref)
        if text.startswith("sha256:") or (len(text) == 64 and not Path(text).exists()):
            data = self.ws.artifacts.get(text)
            return FittedFlow.from_json(data.decode("utf-8"), trust_custom_code=trust_custom_code)
        return FittedFlow.load(text, trust_custom_code=trust_custom_code)

    def _resolve_inputs(
        self, flow: Flow, inputs: Mapping[str, Any], base_dir: Path | None
    ) -> tuple[dict[str, Any], list[ArtifactSpec]]:
        bound: dict[str, Any] = {}
        specs: list[ArtifactSpec] = []
        unknown = [k for k in inputs if k not in flow.sources]
        if unknown:
            raise ValidationError(
                f"no source named {unknown[0]!r}",
                obj=f"flow {flow.name!r}",
                field="inputs",
                fix=f"sources are {', '.join(flow.sources)}",
            )
        for name, spec in flow.sources.items():
            value = inputs.get(name)
            if value is None and isinstance(spec, FeatureGroupSource):
                if self.feature_group_reader is None:
                    raise ValidationError(
                        f"the source reads feature group {spec.name!r}, but no feature-group reader is set",
                        obj=f"flow {flow.name!r} source {name!r}",
                        fix="use ws.wrangle, or WrangleService(ws, feature_group_reader=…); "
                        "or give the source a file with --input",
                    )
                bound[name] = self.feature_group_reader(spec)
                uri = f"featuregroup:{spec.name}" + (f"@{spec.version}" if spec.version else "")
                specs.append(ArtifactSpec("FeatureGroup", uri=uri, name=spec.name))
                continue
            if value is None:
                path = getattr(spec, "path", None)
                if path is None:
                    raise ValidationError(
                        "no input given for the source",
                        obj=f"flow {flow.name!r} source {name!r}",
                        fix=f"pass --input {name}=PATH",
                    )
                value = (base_dir or Path.cwd()) / path
            if isinstance(value, str | os.PathLike):
                path = Path(value)
                if "*" not in str(path) and not path.exists():
                    raise NotFound(
                        f"no file at {path}", obj=f"flow {flow.name!r} source {name!r}", fix="check the path"
                    )
                bound[name] = path
                specs.append(_file_spec(path, f"{flow.name}.{name}"))
            else:
                bound[name] = value
        return bound, specs

    # -- processing job ----------------------------------------------------------------------------
    def run(
        self,
        flow: Flow | str | os.PathLike[str] | None,
        inputs: Mapping[str, Any] | None = None,
        output_dir: str | os.PathLike[str] = "wrangle-output",
        *,
        fitted: FittedFlow | str | os.PathLike[str] | None = None,
        training: bool | None = None,
        trust_custom_code: bool = False,
        run_time: float | None = None,
        progress: bool = True,
    ) -> WrangleRun:
        """Fit the flow (or use `fitted`), write `<output_dir>/<output>.parquet` per output, record lineage.

        `training` (default: True when fitting here, False with a given fitted flow) applies the
        training-only steps (balance, split); those materialise the frame, everything else streams.
        Nothing is written unless every output succeeds.
        """
        if isinstance(flow, str | os.PathLike):
            flow = Flow.load(flow)
        fitted_flow = (
            None if fitted is None else self.load_fitted(fitted, trust_custom_code=trust_custom_code)
        )
        if flow is None:
            if fitted_flow is None:
                raise ValidationError("give a flow, a fitted flow, or both", obj="wrangle run", field="flow")
            flow = fitted_flow.flow
        elif fitted_flow is not None and fitted_flow.flow.sha256 != flow.sha256:
            raise ValidationError(
                "the fitted flow was fitted from a different version of the flow",
                obj=f"flow {flow.name!r}",
                field="fitted",
                fix="refit (omit --fitted), or pass the flow file it was fitted from",
            )
        base_dir = flow.base_dir
        fit_here = fitted_flow is None
        training = fit_here if training is None else training
        bound, input_specs = self._resolve_inputs(flow, inputs or {}, base_dir)
        out_dir = Path(output_dir).resolve()
        targets = {name: out_dir / f"{name}.parquet" for name in flow.output_frames()}
        parameters = {
            "flow": flow.name,
            "flow_sha256": flow.sha256,
            "training": training,
            "fitted_here": fit_here,
            "output_dir": str(out_dir),
        }
        with self.ws.lineage.action("wrangle.run", parameters=parameters) as act:
            for spec in input_specs:
                act.input(spec)
            flow_ref = self.ws.put_artifact(flow.to_json().encode(), _JSON)
            act.input(ArtifactSpec("Flow", uri=flow_ref.uri, sha256=flow_ref.sha256, name=flow.name))
            if fitted_flow is None:
                fitted_flow = flow.fit(
                    bound,
                    trust_custom_code=trust_custom_code,
                    run_time=run_time,
                    progress=progress,
                    base_dir=base_dir,
                )
            fitted_flow.sink(bound, targets, training=training, run_time=run_time, base_dir=base_dir)
            fitted_ref = self._store_fitted(fitted_flow)
            fitted_spec = ArtifactSpec(
                "FittedFlow", uri=fitted_ref.uri, sha256=fitted_ref.sha256, name=flow.name
            )
            if fit_here:
                act.output(fitted_spec)
            else:
                act.input(fitted_spec)
            outputs: dict[str, OutputFile] = {}
            for name, path in targets.items():
                meta = pq.read_metadata(path)
                info = OutputFile(
                    name=name,
                    path=path,
                    rows=meta.num_rows,
                    columns=list(fitted_flow.output_schema(name)),
                    sha256=file_sha256(path),
                )
                outputs[name] = info
                act.output(  # derived from the fitted flow, so walking up from data reaches it
                    ArtifactSpec(
                        "Dataset",
                        uri=path.as_uri(),
                        sha256=info.sha256,
                        name=f"{flow.name}.{name}",
                        properties={"rows": info.rows, "columns": len(info.columns), "format": "parquet"},
                    ),
                    derived_from=fitted_spec,
                )
            act.set(rows={name: o.rows for name, o in outputs.items()}, fitted_sha256=fitted_ref.sha256)
            action_id = act.id
        return WrangleRun(
            flow=flow.name,
            flow_sha256=flow.sha256,
            fitted=fitted_flow,
            fitted_sha256=fitted_ref.sha256,
            fitted_here=fit_here,
            training=training,
            outputs=outputs,
            action_id=action_id,
        )

    def _store_fitted(self, fitted: FittedFlow) -> ArtifactRef:
        return self.ws.put_artifact(fitted.to_json().encode(), _JSON)

    # -- analyses ----------------------------------------------------------------------------------
    def analyze(
        self,
        data: str | os.PathLike[str],
        *,
        target: str | None = None,
        out_dir: str | os.PathLike[str] = "analysis",
        seed: int = 0,
        progress: bool = True,
    ) -> tuple[AnalysisReport, dict[str, Path]]:
        """Profile a CSV or Parquet table: write analysis.json and .html, store both, record lineage."""
        path = Path(data)
        frame = read_table(path)
        with self.ws.lineage.action("wrangle.analyze", parameters={"target": target, "seed": seed}) as act:
            act.input(_file_spec(path, path.name))
            report = analyze(frame, target=target, seed=seed, progress=progress, title=path.name)
            written = report.save(out_dir)
            for kind, file in written.items():
                ref = self.ws.put_artifact(file)
                act.output(ArtifactSpec("Report", uri=ref.uri, sha256=ref.sha256, name=f"{path.name}.{kind}"))
        return report, written
