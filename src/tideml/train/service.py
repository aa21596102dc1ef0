"""`ws.train`: the workspace shell around the trainer, tuner and mitigations.

It resolves the input (a frame, a Parquet path or a dataset artifact), runs the pure core, stores the
model (UBJSON booster + JSON spec) and the reports (JSON + self-contained HTML) in the artifact store,
stores tuning studies and trials in the metadata DB, and records every run through `ws.lineage.action`:
Dataset --ContributedTo--> train.fit / train.tune / train.mitigate --Produced--> Model, Report.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
import sqlalchemy as sa

from tideml.errors import Conflict, IntegrityError, NotFound
from tideml.lineage import ArtifactSpec
from tideml.meta.models import utcnow
from tideml.meta.train_tables import TuningStudy, TuningTrial
from tideml.tables import DatasetInput, resolve_table
from tideml.train.mitigate import METHODS, MitigationResult, compare_mitigations
from tideml.train.model import TrainedModel
from tideml.train.report import render_html, table_html
from tideml.train.spec import TrainSpec
from tideml.train.trainer import TrainResult, train
from tideml.train.tune import TrialRecord, TuneResult, TuneSpec, tune

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["DatasetInput", "MitigationRun", "StoredModel", "TrainRun", "TrainService", "TuneRun"]

_SHA = re.compile(r"(sha256:)?[0-9a-f]{64}")
PARQUET = "application/vnd.apache.parquet"
JSON_TYPE = "application/json"
HTML_TYPE = "text/html"
UBJSON = "application/ubjson"


@dataclass(frozen=True)
class StoredModel:
    """Where a model lives in the artifact store: its spec (the model's identity) and its booster."""

    sha256: str
    booster_sha256: str
    name: str

    @property
    def lineage(self) -> ArtifactSpec:
        return ArtifactSpec(
            "Model",
            uri=f"sha256:{self.sha256}",
            sha256=self.sha256,
            name=self.name,
            properties={"booster_sha256": self.booster_sha256, "format": "tideml.model/1"},
        )


@dataclass
class TrainRun:
    """A recorded training run."""

    result: TrainResult
    dataset: DatasetInput
    model: StoredModel
    report_sha256: str
    report_html_sha256: str

    def summary(self) -> dict[str, Any]:
        return {
            "dataset_sha256": self.dataset.sha256,
            "model_sha256": self.model.sha256,
            "booster_sha256": self.model.booster_sha256,
            "report_sha256": self.report_sha256,
            "report_html_sha256": self.report_html_sha256,
            **self.result.summary(),
        }


@dataclass
class TuneRun:
    """A recorded tuning study."""

    result: TuneResult
    study: str
    dataset: DatasetInput
    model: StoredModel
    report_sha256: str
    report_html_sha256: str

    def summary(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "dataset_sha256": self.dataset.sha256,
            "model_sha256": self.model.sha256,
            "report_sha256": self.report_sha256,
            "report_html_sha256": self.report_html_sha256,
            **self.result.summary(),
        }


@dataclass
class MitigationRun:
    """A recorded mitigation comparison: one stored model per method."""

    result: MitigationResult
    dataset: DatasetInput
    models: dict[str, StoredModel] = field(default_factory=dict)
    report_sha256: str = ""
    report_html_sha256: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "dataset_sha256": self.dataset.sha256,
            "models": {method: m.sha256 for method, m in self.models.items()},
            "report_sha256": self.report_sha256,
            "report_html_sha256": self.report_html_sha256,
            **self.result.summary(),
        }


def _json(data: Any) -> bytes:
    out: bytes = orjson.dumps(
        data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
    )
    return out + b"\n"


class TrainService:
    """Training, tuning and mitigation on a workspace, with artifacts, study tables and lineage."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- inputs ------------------------------------------------------------------------------------
    def resolve_dataset(self, source: Any, *, name: str | None = None) -> DatasetInput:
        """A frame, a Parquet/CSV path or a dataset artifact sha256 → frame + artifact (stored if new)."""
        return resolve_table(self.ws, source, name=name)

    def fitted_flow_ids(self, dataset_sha256: str) -> list[str]:
        """The fitted flows upstream of a dataset in lineage (empty if it has no recorded history)."""
        try:
            artifact_id = self.ws.lineage.find_artifact(sha256=dataset_sha256)
        except NotFound:
            return []
        graph = self.ws.lineage.graph(artifact_id, "upstream", types={"FittedFlow"})
        ids = {f"sha256:{n.sha256}" if n.sha256 else (n.uri or "") for n in graph.artifacts("FittedFlow")}
        return sorted(i for i in ids if i)

    # -- models ------------------------------------------------------------------------------------
    def save_model(self, model: TrainedModel, name: str = "model") -> StoredModel:
        """Store the booster and the spec; the spec's sha256 identifies the model."""
        spec_bytes, booster_bytes = model.to_bytes()
        booster = self.ws.put_artifact(booster_bytes, UBJSON)
        spec = self.ws.put_artifact(spec_bytes, JSON_TYPE)
        return StoredModel(spec.sha256, booster.sha256, name)

    def load_model(self, key: str) -> TrainedModel:
        """Load a stored model by the sha256 of its spec; IntegrityError if anything does not match."""
        spec_bytes = self.ws.artifacts.get(key)
        try:
            booster_key = orjson.loads(spec_bytes)["booster_sha256"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise IntegrityError(
                "not a model spec (no booster_sha256)",
                obj=f"artifact {key}",
                fix="pass the model_sha256 printed by `tide train run`",
            ) from exc
        if not isinstance(booster_key, str) or not _SHA.fullmatch(booster_key):
            raise IntegrityError(
                "booster_sha256 is not a sha256", obj=f"artifact {key}", field="booster_sha256"
            )
        return TrainedModel.from_bytes(
            spec_bytes, self.ws.artifacts.get(booster_key), name=f"model {key[:12]}"
        )

    def _store_report(self, data: dict[str, Any], html: str) -> tuple[str, str]:
        report = self.ws.put_artifact(_json(data), JSON_TYPE)
        page = self.ws.put_artifact(html.encode("utf-8"), HTML_TYPE)
        return report.sha256, page.sha256

    # -- train -------------------------------------------------------------------------------------
    def train(
        self,
        source: Any,
        spec: TrainSpec | dict[str, Any] | None = None,
        *,
        name: str = "model",
        fitted_flow_ids: Sequence[str] | None = None,
        progress: bool = True,
    ) -> TrainRun:
        """Train and evaluate; store the model and report; record `train.fit` in lineage."""
        train_spec = TrainSpec.parse(spec)
        dataset = self.resolve_dataset(source)
        flows = list(fitted_flow_ids) if fitted_flow_ids is not None else self.fitted_flow_ids(dataset.sha256)
        params = {"name": name, "spec": train_spec.model_dump(mode="json")}
        with self.ws.lineage.action("train.fit", parameters=params) as act:
            act.input(dataset.lineage)
            result = train(
                dataset.frame,
                train_spec,
                dataset_sha256=dataset.sha256,
                fitted_flow_ids=flows,
                progress=progress,
            )
            stored = self.save_model(result.model, name)
            html = render_html(f"Training report: {name}", result.evaluation, notes=_notes(result))
            report, page = self._store_report(result.report(), html)
            act.output(stored.lineage, derived_from=dataset.lineage)
            act.output(_report_spec(report, f"{name} evaluation"))
            act.output(_report_spec(page, f"{name} evaluation (HTML)"))
            act.set(**_lineage_metrics(result))
        return TrainRun(result, dataset, stored, report, page)

    # -- tune --------------------------------------------------------------------------------------
    def tune(
        self,
        source: Any,
        tune_spec: TuneSpec | dict[str, Any] | None = None,
        train_spec: TrainSpec | dict[str, Any] | None = None,
        *,
        study: str | None = None,
        warm_start_from: str | None = None,
        fitted_flow_ids: Sequence[str] | None = None,
        progress: bool = True,
    ) -> TuneRun:
        """Run a study; store it and every trial in the metadata DB; refit, store and record the best."""
        tspec = TuneSpec.parse(tune_spec)
        base = TrainSpec.parse(train_spec)
        name = study or f"study-{uuid.uuid4().hex[:10]}"
        warm = self.trials(warm_start_from) if warm_start_from else []
        dataset = self.resolve_dataset(source)
        flows = list(fitted_flow_ids) if fitted_flow_ids is not None else self.fitted_flow_ids(dataset.sha256)
        study_id = self._create_study(name, dataset.sha256, tspec, base, warm_start_from)
        params = {
            "study": name,
            "tune_spec": tspec.model_dump(mode="json"),
            "train_spec": base.model_dump(mode="json"),
        }
        try:
            with self.ws.lineage.action(
                "train.tune", parameters=params, context=("tuning-study", name)
            ) as act:
                act.input(dataset.lineage)
                result = tune(
                    dataset.frame,
                    tspec,
                    base,
                    warm_start=warm,
                    on_trial=lambda record: self._record_trial(study_id, record),
                    dataset_sha256=dataset.sha256,
                    fitted_flow_ids=flows,
                    progress=progress,
                )
                stored = self.save_model(result.refit.model, f"{name} best")
                report_data = {
                    "study": name,
                    "summary": result.summary(),
                    "trials": [t.model_dump() for t in result.trials],
                    "warm_started": [t.model_dump() for t in result.warm_started],
                    "refit": result.refit.report(),
                }
                html = render_html(
                    f"Tuning study {name}",
                    result.refit.evaluation,
                    notes=[_tune_note(result)],
                    sections=[("Trials", table_html(result.table()))],
                )
                report, page = self._store_report(report_data, html)
                act.output(stored.lineage, derived_from=dataset.lineage)
                act.output(_report_spec(report, f"{name} study"))
                act.output(_report_spec(page, f"{name} study (HTML)"))
                act.set(
                    best_value=result.best.value,
                    baseline_value=result.baseline_value,
                    trials=len(result.trials),
                    **_lineage_metrics(result.refit),
                )
                action_id = act.id
        except BaseException as exc:
            self._finish_study(study_id, state="FAILED", error=f"{exc.__class__.__name__}: {exc}"[:2000])
            raise
        self._finish_study(
            study_id,
            state="COMPLETE",
            result=result,
            model_sha256=stored.sha256,
            report_sha256=report,
            action_id=action_id,
        )
        return TuneRun(result, name, dataset, stored, report, page)

    def _create_study(
        self, name: str, dataset_sha256: str, spec: TuneSpec, base: TrainSpec, warm_start_from: str | None
    ) -> int:
        with self.ws.metadata.session() as s:
            exists = s.scalars(sa.select(TuningStudy.id).where(TuningStudy.name == name)).first()
            if exists is not None:
                raise Conflict(
                    "a study with this name exists",
                    obj=f"study {name}",
                    fix="choose another name, or pass it as warm_start_from to continue from its trials",
                )
            row = TuningStudy(
                name=name,
                state="RUNNING",
                dataset_sha256=dataset_sha256,
                objective=spec.objective,
                sampler=spec.sampler,
                search_space={k: v.model_dump(mode="json") for k, v in spec.space.items()},
                tune_spec=spec.model_dump(mode="json"),
                train_spec=base.model_dump(mode="json"),
                warm_start_from=warm_start_from,
            )
            s.add(row)
            s.flush()
            return row.id

    def _record_trial(self, study_id: int, record: TrialRecord) -> None:
        with self.ws.metadata.session() as s:
            s.add(
                TuningTrial(
                    study_id=study_id,
                    number=record.number,
                    state=record.state,
                    params=record.params,
                    value=record.value,
                    metrics=orjson.loads(_json(record.metrics)),
                    duration_seconds=record.duration_seconds,
                )
            )

    def _finish_study(
        self,
        study_id: int,
        *,
        state: Literal["COMPLETE", "FAILED"],
        result: TuneResult | None = None,
        model_sha256: str | None = None,
        report_sha256: str | None = None,
        action_id: int | None = None,
        error: str | None = None,
    ) -> None:
        with self.ws.metadata.session() as s:
            row = s.get(TuningStudy, study_id)
            assert row is not None
            row.state = state
            row.finished_at = utcnow()
            row.error = error
            if result is not None:
                row.best_trial_number = result.best.number
                row.best_value = result.best.value
                row.best_params = result.best.params
                row.baseline_value = result.baseline_value
                row.summary = orjson.loads(_json(result.summary()))
            row.model_sha256 = model_sha256
            row.report_sha256 = report_sha256
            row.lineage_action_id = action_id

    def studies(self) -> list[dict[str, Any]]:
        """Every study, oldest first: name, state, objective, best value, trial count."""
        with self.ws.metadata.session() as s:
            query = sa.select(TuningTrial.study_id, sa.func.count()).group_by(TuningTrial.study_id)
            counts: dict[int, int] = {study_id: count for study_id, count in s.execute(query)}
            rows = s.scalars(sa.select(TuningStudy).order_by(TuningStudy.id)).all()
            return [
                {
                    "name": r.name,
                    "state": r.state,
                    "objective": r.objective,
                    "sampler": r.sampler,
                    "trials": counts.get(r.id, 0),
                    "best_trial": r.best_trial_number,
                    "best_value": r.best_value,
                    "baseline_value": r.baseline_value,
                    "model_sha256": r.model_sha256,
                    "dataset_sha256": r.dataset_sha256,
                    "created_at": r.created_at.isoformat(),
                }
                for r in rows
            ]

    def trials(self, study: str) -> list[TrialRecord]:
        """The stored trials of a study, by trial number."""
        with self.ws.metadata.session() as s:
            study_id = s.scalars(sa.select(TuningStudy.id).where(TuningStudy.name == study)).first()
            if study_id is None:
                raise NotFound(
                    "no such study", obj=f"study {study}", fix="list studies with `tide train studies`"
                )
            rows = s.scalars(
                sa.select(TuningTrial).where(TuningTrial.study_id == study_id).order_by(TuningTrial.number)
            ).all()
            return [
                TrialRecord(
                    number=r.number,
                    state=r.state,
                    params=dict(r.params),
                    value=r.value,
                    metrics=dict(r.metrics),
                    duration_seconds=r.duration_seconds,
                )
                for r in rows
            ]

    # -- mitigate ----------------------------------------------------------------------------------
    def mitigate(
        self,
        source: Any,
        spec: TrainSpec | dict[str, Any] | None = None,
        *,
        facet: str = "customer_gender_female",
        facet_value: Any = 1,
        methods: Sequence[str] = METHODS,
        group_objective: Literal["parity", "max_f1"] = "parity",
        name: str = "model",
        fitted_flow_ids: Sequence[str] | None = None,
        progress: bool = True,
    ) -> MitigationRun:
        """Compare mitigations; store one model per method and the comparison; record `train.mitigate`."""
        train_spec = TrainSpec.parse(spec)
        dataset = self.resolve_dataset(source)
        flows = list(fitted_flow_ids) if fitted_flow_ids is not None else self.fitted_flow_ids(dataset.sha256)
        params = {
            "facet": facet,
            "facet_value": facet_value,
            "methods": list(methods),
            "group_objective": group_objective,
            "spec": train_spec.model_dump(mode="json"),
        }
        with self.ws.lineage.action("train.mitigate", parameters=params) as act:
            act.input(dataset.lineage)
            result = compare_mitigations(
                dataset.frame,
                train_spec,
                facet=facet,
                facet_value=facet_value,
                methods=methods,
                group_objective=group_objective,
                dataset_sha256=dataset.sha256,
                fitted_flow_ids=flows,
                progress=progress,
            )
            run = MitigationRun(result, dataset)
            for row in result.rows:
                stored = self.save_model(result.results[row.method].model, f"{name} {row.method}")
                run.models[row.method] = stored
                act.output(stored.lineage, derived_from=dataset.lineage)
            data = {
                "summary": result.summary(),
                "models": {m: s.sha256 for m, s in run.models.items()},
                "reports": {m: result.results[m].report() for m in run.models},
            }
            html = render_html(
                f"Bias mitigation on {facet} = {facet_value}",
                result.results["none"].evaluation,
                notes=[
                    "All methods share one entity split; thresholds are chosen on validation and every "
                    "number is measured on test. DPPL = flagged share of the other rows minus flagged share "
                    "of the facet (computed by tideml.clarify); the plots show the unmitigated model."
                ],
                sections=[("Methods side by side (test split)", table_html(result.table()))],
            )
            run.report_sha256, run.report_html_sha256 = self._store_report(data, html)
            act.output(_report_spec(run.report_sha256, "mitigation comparison"))
            act.output(_report_spec(run.report_html_sha256, "mitigation comparison (HTML)"))
            act.set(
                methods={r.method: {"test_auc": r.test_auc, "f1": r.f1, "dppl": r.dppl} for r in result.rows}
            )
        return run


def _report_spec(sha256: str, name: str) -> ArtifactSpec:
    return ArtifactSpec("Report", uri=f"sha256:{sha256}", sha256=sha256, name=name)


def _lineage_metrics(result: TrainResult) -> dict[str, Any]:
    t = result.evaluation.test
    out: dict[str, Any] = {
        "test_roc_auc": t.roc_auc,
        "test_roc_auc_ci95": [t.roc_auc_ci_low, t.roc_auc_ci_high],
        "test_pr_auc": t.pr_auc,
        "test_f1": t.f1,
        "threshold": result.evaluation.threshold.value,
    }
    if result.cv is not None:
        out["cv_oof_auc_mean"] = result.cv.oof_auc_mean
    return out


def _notes(result: TrainResult) -> list[str]:
    split = result.split_summary
    notes = [
        "Split by entity: "
        + ", ".join(f"{k} {v['entities']} entities / {v['positives']} positives" for k, v in split.items())
        + "; no entity appears in two splits."
    ]
    if result.cv is not None:
        notes.append(
            f"{result.cv.repeats}x repeated {result.cv.folds}-fold CV ({result.cv.scope} rows): out-of-fold "
            f"ROC-AUC {result.cv.oof_auc_mean:.4f} ± {result.cv.oof_auc_std:.4f}."
        )
    return notes


def _tune_note(result: TuneResult) -> str:
    base = "" if result.baseline_value is None else f" (baseline {result.baseline_value:.4f})"
    return (
        f"{len(result.trials)} trials, objective {result.spec.objective} on development rows; best trial "
        f"{result.best.number} = {result.best.value:.4f}{base}. The best parameters were refit on the train "
        "split; the metrics below are that model's."
    )
