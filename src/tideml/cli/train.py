"""`tide train run|tune|mitigate|studies|trials`: the CLI over `tideml.train.TrainService`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from tideml.cli._app import JsonOption, WorkspaceOption, app, console, emit_json, open_workspace
from tideml.errors import ValidationError

if TYPE_CHECKING:  # the training stack (sklearn, xgboost) loads only when a train command runs
    from tideml.train.spec import TrainSpec
    from tideml.train.tune import TuneSpec

__all__ = ["train_app"]

train_app = typer.Typer(
    help="Train, tune and de-bias XGBoost models; every number is measured on a held-out entity split.",
    no_args_is_help=True,
)

DatasetArg = Annotated[str, typer.Argument(help="A Parquet (or CSV) file, or a dataset artifact sha256.")]
SpecOption = Annotated[
    Path | None,
    typer.Option("--spec", help="TrainSpec as JSON or YAML (columns, hyperparameters, split...)."),
]
LabelOption = Annotated[str | None, typer.Option(help="Label column (default: fraud).", show_default=False)]
EntityOption = Annotated[
    str | None, typer.Option(help="Entity column (default: policy_id).", show_default=False)
]
ProgressOption = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show progress bars on stderr.")
]


def _train_spec(
    spec_file: Path | None,
    label: str | None,
    entity: str | None,
    cv_folds: int | None = None,
    cv_repeats: int | None = None,
    cv_scope: str | None = None,
    threshold: str | None = None,
    amount_column: str | None = None,
    seed: int | None = None,
) -> TrainSpec:
    from tideml.train.spec import TrainSpec, load_spec_file, parse_spec

    data: dict[str, Any] = load_spec_file(spec_file, TrainSpec).model_dump() if spec_file else {}
    if label is not None:
        data["label"] = label
    if entity is not None:
        data["entity"] = entity
    if seed is not None:
        data["seed"] = seed
    if cv_folds is not None or cv_repeats is not None or cv_scope is not None:
        cv = dict(data.get("cv") or {})
        cv.update(
            {
                k: v
                for k, v in (("folds", cv_folds), ("repeats", cv_repeats), ("scope", cv_scope))
                if v is not None
            }
        )
        data["cv"] = cv
    if threshold is not None or amount_column is not None:
        th = dict(data.get("threshold") or {})
        if threshold is not None:
            th["strategy"] = threshold
        if amount_column is not None:
            th["amount_column"] = amount_column
        data["threshold"] = th
    return parse_spec(TrainSpec, data)


def _metrics_table(summary: dict[str, Any], title: str) -> Table:
    test = summary["test"]
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    low, high = test["roc_auc_ci95"]
    ci = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
    rows = [
        ("test ROC-AUC (95% CI)", f"{test['roc_auc']:.4f}{ci}"),
        ("test PR-AUC", f"{test['pr_auc']:.4f}"),
        ("test log loss", f"{test['log_loss']:.4f}"),
        ("test Brier", f"{test['brier']:.4f}"),
        (
            f"threshold ({summary['threshold']['strategy']}, on validation)",
            f"{summary['threshold']['value']:.4f}",
        ),
        (
            "test F1 / precision / recall",
            f"{test['f1']:.3f} / {test['precision']:.3f} / {test['recall']:.3f}",
        ),
        ("test accuracy", f"{test['accuracy']:.4f}"),
        ("test TN / FP / FN / TP", " / ".join(str(test["confusion"][k]) for k in ("tn", "fp", "fn", "tp"))),
        ("validation ROC-AUC", f"{summary['validation']['roc_auc']:.4f}"),
    ]
    if "cv" in summary:
        cv = summary["cv"]
        rows.append(
            (
                f"{cv['repeats']}x{cv['folds']}-fold OOF ROC-AUC ({cv['scope']})",
                f"{cv['oof_auc_mean']:.4f} ± {cv['oof_auc_std']:.4f}",
            )
        )
    for name, value in rows:
        table.add_row(name, value)
    return table


@train_app.command("run")
def run(
    dataset: DatasetArg,
    spec: SpecOption = None,
    label: LabelOption = None,
    entity: EntityOption = None,
    cv_folds: Annotated[int | None, typer.Option(help="Also run k-fold CV with this many folds.")] = None,
    cv_repeats: Annotated[int | None, typer.Option(help="Repeats of the k-fold CV.")] = None,
    cv_scope: Annotated[
        str | None, typer.Option(help="CV rows: development (train+validation) or all.", show_default=False)
    ] = None,
    threshold: Annotated[
        str | None, typer.Option(help="Threshold strategy: max_f1, min_cost or fixed.", show_default=False)
    ] = None,
    amount_column: Annotated[
        str | None, typer.Option(help="Column with each row's claim amount (min_cost).", show_default=False)
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the split and the booster.", show_default=False)
    ] = None,
    name: Annotated[str, typer.Option(help="Name recorded for the model.")] = "model",
    out: Annotated[
        Path | None, typer.Option(help="Also write model.json + model.ubj into this folder.")
    ] = None,
    workspace: WorkspaceOption = None,
    progress: ProgressOption = True,
    json: JsonOption = False,
) -> None:
    """Train an XGBoost model, choose the threshold on validation and report on the test split."""
    train_spec = _train_spec(
        spec, label, entity, cv_folds, cv_repeats, cv_scope, threshold, amount_column, seed
    )
    with open_workspace(workspace) as ws:
        result = ws.train.train(dataset, train_spec, name=name, progress=progress)
    if out is not None:
        result.result.model.save(out)
    summary = result.summary()
    if json:
        emit_json(summary)
        return
    console.print(_metrics_table(summary, f"model {result.model.sha256[:12]}"))
    console.print(f"model   {result.model.sha256}")
    console.print(f"report  {result.report_html_sha256} (HTML), {result.report_sha256} (JSON)")


def _tune_spec(space: Path | None, overrides: dict[str, Any]) -> TuneSpec:
    from tideml.train.spec import parse_spec, read_spec_mapping
    from tideml.train.tune import TuneSpec

    data: dict[str, Any] = {}
    if space is not None:
        raw = read_spec_mapping(space)
        data = raw if "space" in raw else {"space": raw}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return parse_spec(TuneSpec, data)
    except ValidationError as exc:
        where = f"{space} (TuneSpec)" if space is not None else "TuneSpec"
        raise ValidationError(exc.message, obj=where, field=exc.field, fix=exc.fix) from None


@train_app.command("tune")
def tune(
    dataset: DatasetArg,
    space: Annotated[
        Path | None,
        typer.Option(help="Search space (or a whole TuneSpec) as JSON/YAML; default: the built-in space."),
    ] = None,
    spec: SpecOption = None,
    label: LabelOption = None,
    entity: EntityOption = None,
    trials: Annotated[int | None, typer.Option(help="Trial budget.", show_default="30")] = None,
    timeout: Annotated[float | None, typer.Option(help="Time budget in seconds.", show_default=False)] = None,
    sampler: Annotated[str | None, typer.Option(help="tpe, random or grid.", show_default="tpe")] = None,
    jobs: Annotated[int | None, typer.Option(help="Trials in parallel.", show_default="1")] = None,
    pruning: Annotated[bool, typer.Option("--pruning/--no-pruning", help="Prune weak trials.")] = True,
    objective: Annotated[
        str | None, typer.Option(help="cv_auc or validation_auc.", show_default="cv_auc")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default: generated).", show_default=False)
    ] = None,
    warm_start: Annotated[
        str | None, typer.Option(help="Start from the trials of this earlier study.", show_default=False)
    ] = None,
    cv_repeats: Annotated[
        int | None,
        typer.Option(help="Report repeated 5-fold OOF AUC of the best and baseline.", show_default=False),
    ] = None,
    cv_scope: Annotated[str | None, typer.Option(help="Rows of that CV: development or all.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the split and the sampler.", show_default=False)
    ] = None,
    workspace: WorkspaceOption = None,
    progress: ProgressOption = True,
    json: JsonOption = False,
) -> None:
    """Search hyperparameters with Optuna; store every trial; refit the best and evaluate it on test."""
    train_spec = _train_spec(
        spec,
        label,
        entity,
        5 if cv_repeats else None,
        cv_repeats,
        cv_scope if cv_repeats else None,
        seed=seed,
    )
    overrides: dict[str, Any] = {
        "n_trials": trials,
        "timeout_seconds": timeout,
        "sampler": sampler,
        "n_jobs": jobs,
        "objective": objective,
        "seed": seed,
    }
    if not pruning:
        overrides["pruning"] = False
    tune_spec = _tune_spec(space, overrides)
    with open_workspace(workspace) as ws:
        result = ws.train.tune(
            dataset, tune_spec, train_spec, study=study, warm_start_from=warm_start, progress=progress
        )
    summary = result.summary()
    if json:
        emit_json({**summary, "trials_table": result.result.table()})
        return
    table = Table(title=f"study {result.study}: trials ({tune_spec.objective})")
    names = list(tune_spec.space)
    for column in ("#", "state", "value", "seconds", *names):
        table.add_column(column, justify="right")
    for t in result.result.trials:
        table.add_row(
            str(t.number),
            t.state,
            "-" if t.value is None else f"{t.value:.4f}",
            f"{t.duration_seconds:.2f}",
            *(_short(t.params.get(n)) for n in names),
        )
    console.print(table)
    base = summary.get("baseline_value")
    console.print(
        f"best trial {summary['best_trial']}: {summary['best_value']:.4f}"
        + ("" if base is None else f" vs baseline {base:.4f} (article's fixed hyperparameters)")
    )
    tuned = summary["tuned"]
    console.print(
        f"refit: validation AUC {tuned['validation_auc']:.4f}, test AUC {tuned['test_auc']:.4f} "
        f"[{tuned['test_auc_ci95'][0]:.3f}, {tuned['test_auc_ci95'][1]:.3f}], test F1 {tuned['test_f1']:.3f}"
    )
    if "baseline" in summary:
        b = summary["baseline"]
        console.print(f"baseline: validation AUC {b['validation_auc']:.4f}, test AUC {b['test_auc']:.4f}")
    if "cv_oof_auc_mean" in tuned:
        console.print(f"repeated 5-fold OOF AUC: tuned {tuned['cv_oof_auc_mean']:.4f}", end="")
        if "baseline" in summary:
            console.print(f", baseline {summary['baseline']['cv_oof_auc_mean']:.4f}", end="")
        console.print()
    console.print(f"model   {result.model.sha256}")
    console.print(f"report  {result.report_html_sha256} (HTML), {result.report_sha256} (JSON)")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


@train_app.command("mitigate")
def mitigate(
    dataset: DatasetArg,
    facet: Annotated[
        str, typer.Option(help="Facet column (1 marks the group to protect).")
    ] = "customer_gender_female",
    facet_value: Annotated[int, typer.Option(help="Value of the facet column that marks facet d.")] = 1,
    methods: Annotated[
        str, typer.Option(help="Comma-separated methods.")
    ] = "none,smote,smote_label_preserving,reweighing,group_thresholds",
    group_objective: Annotated[str, typer.Option(help="Per-group thresholds: parity or max_f1.")] = "parity",
    spec: SpecOption = None,
    label: LabelOption = None,
    entity: EntityOption = None,
    workspace: WorkspaceOption = None,
    progress: ProgressOption = True,
    json: JsonOption = False,
) -> None:
    """Compare SMOTE, reweighing and per-group thresholds with the unmitigated model, on test."""
    if group_objective not in ("parity", "max_f1"):
        raise ValidationError(
            f"unknown objective {group_objective!r}",
            obj="tide train mitigate",
            field="group-objective",
            fix="use parity or max_f1",
        )
    objective: Literal["parity", "max_f1"] = "parity" if group_objective == "parity" else "max_f1"
    train_spec = _train_spec(spec, label, entity)
    with open_workspace(workspace) as ws:
        result = ws.train.mitigate(
            dataset,
            train_spec,
            facet=facet,
            facet_value=facet_value,
            methods=[m.strip() for m in methods.split(",") if m.strip()],
            group_objective=objective,
            progress=progress,
        )
    if json:
        emit_json(result.summary())
        return
    table = Table(title=f"mitigation on {facet} = {facet_value} (test split)")
    for column in (
        "method",
        "AUC",
        "AUC 95% CI",
        "F1",
        "precision",
        "recall",
        "flagged d",
        "flagged a",
        "DPPL",
    ):
        table.add_column(column, justify="right")
    for r in result.result.rows:
        low, high = r.test_auc_ci95
        table.add_row(
            r.method,
            f"{r.test_auc:.4f}",
            "-" if low is None or high is None else f"[{low:.3f}, {high:.3f}]",
            f"{r.f1:.3f}",
            f"{r.precision:.3f}",
            f"{r.recall:.3f}",
            f"{r.flagged_rate_facet:.3f}",
            f"{r.flagged_rate_other:.3f}",
            f"{r.dppl:+.4f}",
        )
    console.print(table)
    console.print(f"report  {result.report_html_sha256} (HTML), {result.report_sha256} (JSON)")


@train_app.command("studies")
def studies(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """List the tuning studies stored in the metadata DB."""
    with open_workspace(workspace) as ws:
        rows = ws.train.studies()
    if json:
        emit_json(rows)
        return
    table = Table("study", "state", "objective", "sampler", "trials", "best", "baseline", "model")
    for r in rows:
        table.add_row(
            r["name"],
            r["state"],
            r["objective"],
            r["sampler"],
            str(r["trials"]),
            "-" if r["best_value"] is None else f"{r['best_value']:.4f}",
            "-" if r["baseline_value"] is None else f"{r['baseline_value']:.4f}",
            (r["model_sha256"] or "-")[:12],
        )
    console.print(table)


@train_app.command("trials")
def trials(
    study: Annotated[str, typer.Argument(help="Study name.")],
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Print the stored trials of one study."""
    with open_workspace(workspace) as ws:
        records = ws.train.trials(study)
    if json:
        emit_json([r.model_dump() for r in records])
        return
    names = sorted({k for r in records for k in r.params})
    table = Table(title=f"study {study}")
    for column in ("#", "state", "value", "seconds", *names):
        table.add_column(column, justify="right")
    for r in records:
        table.add_row(
            str(r.number),
            r.state,
            "-" if r.value is None else f"{r.value:.4f}",
            f"{r.duration_seconds:.2f}",
            *(_short(r.params.get(n)) for n in names),
        )
    console.print(table)


app.add_typer(train_app, name="train")
