"""Hyperparameter tuning with Optuna: TPE, random or grid search over a declared space.

The objective is measured on development data only (train + validation entities; the test split is never
touched): by default the mean ROC-AUC over entity-grouped stratified k folds, or the validation-split AUC.
Weak trials are pruned (median rule, after each fold or every few boosting rounds). A study can be
warm-started from earlier trials, and bounded by a trial budget and a time budget. The best trial is
refit on the train split with the validated threshold and evaluated on test, next to a baseline (the
article's fixed hyperparameters) fitted the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

import numpy as np
import optuna
import pydantic
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.metrics import roc_auc_score

from tideml._progress import progress_bar
from tideml.errors import ValidationError
from tideml.train.data import ModelMatrix, as_polars, build_matrix, frame_fingerprint
from tideml.train.spec import ARTICLE_HYPERPARAMETERS, CVSpec, Hyperparameters, TrainSpec, _Spec, parse_spec
from tideml.train.split import Split, entity_split
from tideml.train.trainer import TrainResult, cross_validate, fit_booster, fit_evaluate, resolve_threads

__all__ = [
    "DEFAULT_SEARCH_SPACE",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "TrialRecord",
    "TuneResult",
    "TuneSpec",
    "tune",
]

# Folds of the tuning objective use a seed apart from the reporting CV's, so the reported out-of-fold
# AUC is not measured on the very folds that selected the parameters.
_TUNING_FOLD_SEED_OFFSET = 10_007
_PRUNE_REPORT_EVERY = 10  # boosting rounds between pruning checks of the validation objective


class IntParam(_Spec):
    """An integer hyperparameter: low..high (inclusive), optional step or log scale."""

    type: Literal["int"] = "int"
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    def grid(self) -> list[Any]:
        return list(range(self.low, self.high + 1, self.step))

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.IntDistribution(self.low, self.high, log=self.log, step=self.step)


class FloatParam(_Spec):
    """A real hyperparameter: low..high, optionally log-scaled or stepped (grid search needs a step)."""

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    def grid(self) -> list[Any]:
        if self.step is None:
            raise ValidationError(
                "a float parameter needs a step for grid search",
                obj="TuneSpec.space",
                field="step",
                fix="add `step` to every float parameter, or use the tpe/random sampler",
            )
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)


class CategoricalParam(_Spec):
    """A hyperparameter chosen from a list of values."""

    type: Literal["categorical"] = "categorical"
    choices: list[str | int | float | bool | None] = Field(min_length=1)

    def grid(self) -> list[Any]:
        return list(self.choices)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.CategoricalDistribution(self.choices)


ParamSpace = Annotated[IntParam | FloatParam | CategoricalParam, Field(discriminator="type")]

# Shallow, slow-learning, regularised trees suit a few-percent positive rate and a few thousand entities.
DEFAULT_SEARCH_SPACE: dict[str, IntParam | FloatParam | CategoricalParam] = {
    "max_depth": IntParam(low=1, high=4),
    "eta": FloatParam(low=0.005, high=0.2, log=True),
    "num_round": IntParam(low=100, high=1000, step=50),
    "min_child_weight": FloatParam(low=1.0, high=20.0, log=True),
    "subsample": FloatParam(low=0.5, high=1.0),
    "colsample_bytree": FloatParam(low=0.3, high=1.0),
    "reg_lambda": FloatParam(low=0.1, high=50.0, log=True),
}


class TuneSpec(_Spec):
    """What to search, how, and within which budgets."""

    space: dict[str, ParamSpace] = Field(default_factory=lambda: dict(DEFAULT_SEARCH_SPACE))
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    n_trials: int | None = Field(
        30, ge=1, description="Trial budget (new trials; warm-start trials are extra)."
    )
    timeout_seconds: float | None = Field(None, gt=0, description="Time budget; no trial starts after it.")
    n_jobs: int = Field(1, ge=1, le=64, description="Trials run in parallel (threads).")
    pruning: bool = True
    objective: Literal["cv_auc", "validation_auc"] = "cv_auc"
    cv_folds: int = Field(5, ge=2, le=20)
    seed: int = Field(0, ge=0, lt=2**31)
    baseline: Hyperparameters | None = Field(
        ARTICLE_HYPERPARAMETERS, description="Reference hyperparameters measured the same way (null to skip)."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.n_trials is None and self.timeout_seconds is None:
            raise ValueError("set n_trials, timeout_seconds or both, so the study ends")
        if not self.space:
            raise ValueError("space must name at least one hyperparameter")
        allowed = set(Hyperparameters.model_fields)
        for name, param in self.space.items():
            if name not in allowed:
                raise ValueError(f"{name!r} is not a hyperparameter (allowed: {', '.join(sorted(allowed))})")
            if isinstance(param, IntParam | FloatParam):
                if param.low > param.high:
                    raise ValueError(f"{name}: low must not exceed high")
                if param.log and param.low <= 0:
                    raise ValueError(f"{name}: a log scale needs low > 0")
                if param.log and (param.step not in (None, 1)):
                    raise ValueError(f"{name}: log scale and step cannot be combined")
                edges: list[Any] = [param.low, param.high]
            else:
                edges = list(param.choices)
            for value in edges:  # every edge of the space must be a valid hyperparameter value
                try:
                    Hyperparameters.model_validate({name: value})
                except pydantic.ValidationError as exc:
                    raise ValueError(f"{name}: {value!r} is not a valid value") from exc
        return self

    def grid(self) -> dict[str, list[Any]]:
        """The full grid of the grid sampler."""
        return {name: param.grid() for name, param in self.space.items()}


class TrialRecord(BaseModel):
    """One trial: its parameters, objective value, extra metrics, duration and final state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    state: Literal["COMPLETE", "PRUNED", "FAIL"]
    params: dict[str, Any]
    value: float | None
    metrics: dict[str, Any] = Field(default_factory=dict)
    duration_seconds: float
    warm_start: bool = False


@dataclass
class TuneResult:
    """The study: every trial, the best one, the baseline, and the best trial refit and tested."""

    spec: TuneSpec
    train_spec: TrainSpec
    trials: list[TrialRecord]
    warm_started: list[TrialRecord]
    best: TrialRecord
    best_hyperparameters: Hyperparameters
    baseline_value: float | None
    refit: TrainResult
    baseline_refit: TrainResult | None
    elapsed_seconds: float
    timings: dict[str, float]

    def table(self) -> list[dict[str, Any]]:
        """One row per trial (new ones), for printing and storing."""
        return [
            {
                "number": t.number,
                "state": t.state,
                "value": t.value,
                "duration_seconds": t.duration_seconds,
                **{f"param.{k}": v for k, v in sorted(t.params.items())},
            }
            for t in self.trials
        ]

    def summary(self) -> dict[str, Any]:
        """JSON-ready digest: best vs baseline on the objective, on validation and on test."""
        states = [t.state for t in self.trials]
        out: dict[str, Any] = {
            "objective": self.spec.objective,
            "sampler": self.spec.sampler,
            "trials": len(self.trials),
            "complete": states.count("COMPLETE"),
            "pruned": states.count("PRUNED"),
            "failed": states.count("FAIL"),
            "warm_started": len(self.warm_started),
            "elapsed_seconds": self.elapsed_seconds,
            "timings_seconds": self.timings,
            "best_trial": self.best.number,
            "best_value": self.best.value,
            "best_params": self.best.params,
            "baseline_value": self.baseline_value,
            "beats_baseline": None
            if self.baseline_value is None
            else bool((self.best.value or 0) > self.baseline_value),
            "tuned": _refit_digest(self.refit),
        }
        if self.baseline_refit is not None:
            out["baseline"] = _refit_digest(self.baseline_refit)
        return out


def _refit_digest(result: TrainResult) -> dict[str, Any]:
    t = result.evaluation.test
    digest: dict[str, Any] = {
        "validation_auc": result.evaluation.validation.roc_auc,
        "test_auc": t.roc_auc,
        "test_auc_ci95": [t.roc_auc_ci_low, t.roc_auc_ci_high],
        "test_pr_auc": t.pr_auc,
        "test_f1": t.f1,
        "threshold": result.evaluation.threshold.value,
        "booster_sha256": result.model.spec.booster_sha256,
    }
    if result.cv is not None:
        digest["cv_oof_auc_mean"] = result.cv.oof_auc_mean
        digest["cv_oof_auc"] = result.cv.oof_auc
    return digest


def _sampler(spec: TuneSpec) -> optuna.samplers.BaseSampler:
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(spec.grid(), seed=spec.seed)
    return optuna.samplers.TPESampler(
        seed=spec.seed, n_startup_trials=min(10, max(1, (spec.n_trials or 30) // 3))
    )


def _suggest(trial: optuna.Trial, spec: TuneSpec) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, p in spec.space.items():
        if isinstance(p, IntParam):
            params[name] = trial.suggest_int(name, p.low, p.high, step=p.step, log=p.log)
        elif isinstance(p, FloatParam):
            params[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
        else:
            params[name] = trial.suggest_categorical(name, p.choices)
    return params


def _hyperparameters(base: Hyperparameters, params: dict[str, Any]) -> Hyperparameters:
    merged = {**base.model_dump(), **params}
    if "num_round" in params:  # the number of rounds is searched: train exactly that many
        merged["early_stopping_rounds"] = None
    return parse_spec(Hyperparameters, merged)


class _PruneOnValidation(xgb.callback.TrainingCallback):
    """Report validation AUC every few rounds; stop training when Optuna says the trial is weak.

    It predicts on the DMatrix XGBoost also evaluates each round, so the margins come from XGBoost's
    prediction cache (one new tree per round) rather than from the whole model each time.
    """

    def __init__(self, trial: optuna.Trial, validation: xgb.DMatrix, y: np.ndarray[Any, Any]) -> None:
        super().__init__()
        self.trial, self.validation, self.y = trial, validation, y
        self.pruned = False

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if (epoch + 1) % _PRUNE_REPORT_EVERY:
            return False
        auc = float(roc_auc_score(self.y, model.predict(self.validation, output_margin=True)))
        self.trial.report(auc, epoch + 1)
        self.pruned = self.trial.should_prune()
        return self.pruned


def _objective_value(
    matrix: ModelMatrix,
    split: Split,
    hp: Hyperparameters,
    spec: TuneSpec,
    train_spec: TrainSpec,
    nthread: int,
    trial: optuna.Trial | None,
) -> tuple[float, dict[str, Any]]:
    """The objective of one parameter set (raises optuna.TrialPruned when the trial is pruned)."""
    if spec.objective == "cv_auc":

        def report(step: int, mean_so_far: float) -> None:
            if trial is not None and spec.pruning:
                trial.report(mean_so_far, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        cv = cross_validate(
            matrix,
            hp,
            CVSpec(folds=spec.cv_folds, repeats=1),
            rows=split.development,
            seed=spec.seed + _TUNING_FOLD_SEED_OFFSET,
            nthread=nthread,
            on_fold=report,
        )
        return cv.fold_auc_mean, {"fold_auc": cv.fold_auc[0], "oof_auc": cv.oof_auc[0]}
    X_val, y_val = matrix.X[split.validation], matrix.y[split.validation]
    dval = xgb.DMatrix(X_val, label=y_val)
    callback = _PruneOnValidation(trial, dval, y_val) if (trial is not None and spec.pruning) else None
    booster, info = fit_booster(
        matrix.X[split.train],
        matrix.y[split.train],
        hp,
        X_validation=dval,
        y_validation=y_val,
        seed=train_spec.seed,
        nthread=nthread,
        callbacks=[callback] if callback is not None else [],
    )
    if callback is not None and callback.pruned:
        raise optuna.TrialPruned()
    auc = float(roc_auc_score(y_val, booster.inplace_predict(X_val, validate_features=False)))
    return auc, {"validation_auc": auc, "best_iteration": info["best_iteration"]}


def _record(frozen: optuna.trial.FrozenTrial) -> TrialRecord:
    state = {optuna.trial.TrialState.COMPLETE: "COMPLETE", optuna.trial.TrialState.PRUNED: "PRUNED"}.get(
        frozen.state, "FAIL"
    )
    duration = frozen.duration.total_seconds() if frozen.duration is not None else 0.0
    return TrialRecord(
        number=frozen.number,
        state=state,
        params=dict(frozen.params),
        value=frozen.value if state == "COMPLETE" else None,
        metrics=dict(frozen.user_attrs.get("metrics", {})),
        duration_seconds=duration,
        warm_start=bool(frozen.user_attrs.get("warm_start", False)),
    )


def _add_warm_start(
    study: optuna.Study, spec: TuneSpec, previous: Sequence[TrialRecord]
) -> list[TrialRecord]:
    distributions = {name: p.distribution() for name, p in spec.space.items()}
    added: list[TrialRecord] = []
    for old in previous:
        if old.state != "COMPLETE" or old.value is None or set(old.params) != set(distributions):
            continue
        try:
            frozen = optuna.trial.create_trial(
                params=old.params,
                distributions=distributions,
                value=old.value,
                user_attrs={"metrics": old.metrics, "warm_start": True},
            )
        except ValueError:  # outside the current space
            continue
        study.add_trial(frozen)
        added.append(old.model_copy(update={"warm_start": True}))
    return added


def tune(
    data: Any,
    spec: TuneSpec | dict[str, Any] | None = None,
    train_spec: TrainSpec | dict[str, Any] | None = None,
    *,
    warm_start: Sequence[TrialRecord] = (),
    on_trial: Callable[[TrialRecord], None] | None = None,
    dataset_sha256: str | None = None,
    fitted_flow_ids: Sequence[str] = (),
    progress: bool = True,
) -> TuneResult:
    """Search hyperparameters on development data, then refit the best and evaluate it on test.

    `train_spec` fixes everything that is not searched (columns, split, threshold, the base
    hyperparameters, and `cv` for the out-of-fold AUC reported for the refit and the baseline).
    `on_trial` is called with each finished trial (from worker threads when `n_jobs > 1`).
    """
    tune_spec = parse_spec(TuneSpec, spec)
    base = TrainSpec.parse(train_spec)
    started = time.perf_counter()
    frame = as_polars(data)
    matrix = build_matrix(frame, base)
    split = entity_split(matrix.entities, matrix.y, base.split, seed=base.seed)
    cores = resolve_threads(base.n_jobs, matrix.rows)
    nthread = max(1, cores // tune_spec.n_jobs)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=_sampler(tune_spec),
        pruner=(
            optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
            if tune_spec.pruning
            else optuna.pruners.NopPruner()
        ),
    )
    warm = _add_warm_start(study, tune_spec, warm_start)

    def objective(trial: optuna.Trial) -> float:
        params = _suggest(trial, tune_spec)
        hp = _hyperparameters(base.hyperparameters, params)
        value, metrics = _objective_value(matrix, split, hp, tune_spec, base, nthread, trial)
        trial.set_user_attr("metrics", metrics)
        return value

    records: list[TrialRecord] = []
    budget = tune_spec.n_trials
    if tune_spec.sampler == "grid":
        size = math.prod(len(v) for v in tune_spec.grid().values())
        budget = size if budget is None else min(budget, size)
    timings: dict[str, float] = {"prepare": time.perf_counter() - started}
    clock = time.perf_counter()
    with progress_bar("Tuning", total=budget, enabled=progress) as bar:

        def finished(_study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
            if frozen.user_attrs.get("warm_start"):
                return
            record = _record(frozen)
            records.append(record)
            bar.advance(1)
            if on_trial is not None:
                on_trial(record)

        study.optimize(
            objective,
            n_trials=budget,
            timeout=tune_spec.timeout_seconds,
            n_jobs=tune_spec.n_jobs,
            callbacks=[finished],
            catch=(xgb.core.XGBoostError,),
            gc_after_trial=False,
        )
    timings["study"] = time.perf_counter() - clock
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ValidationError(
            "no trial completed",
            obj="tuning study",
            fix="raise n_trials or timeout_seconds, or disable pruning",
        )
    best = _record(study.best_trial)
    best_hp = _hyperparameters(base.hyperparameters, best.params)
    clock = time.perf_counter()
    baseline_value: float | None = None
    if tune_spec.baseline is not None:
        baseline_value, _ = _objective_value(
            matrix, split, tune_spec.baseline, tune_spec, base, nthread, None
        )

    timings["baseline_objective"] = time.perf_counter() - clock
    clock = time.perf_counter()
    fingerprint = dataset_sha256 or frame_fingerprint(frame)
    refit = _refit(matrix, split, base, best_hp, fingerprint, fitted_flow_ids, progress)
    refit.extra["tuning"] = {"best_trial": best.number, "objective": tune_spec.objective, "value": best.value}
    baseline_refit = None
    if tune_spec.baseline is not None:
        baseline_refit = _refit(matrix, split, base, tune_spec.baseline, fingerprint, fitted_flow_ids, False)
    timings["refit_and_report"] = time.perf_counter() - clock
    records.sort(key=lambda r: r.number)
    return TuneResult(
        spec=tune_spec,
        train_spec=base,
        trials=records,
        warm_started=warm,
        best=best,
        best_hyperparameters=best_hp,
        baseline_value=baseline_value,
        refit=refit,
        baseline_refit=baseline_refit,
        elapsed_seconds=time.perf_counter() - started,
        timings=timings,
    )


def _refit(
    matrix: ModelMatrix,
    split: Split,
    base: TrainSpec,
    hp: Hyperparameters,
    dataset_sha256: str,
    fitted_flow_ids: Sequence[str],
    progress: bool,
) -> TrainResult:
    spec = base.model_copy(update={"hyperparameters": hp})
    cv = None
    if spec.cv is not None:
        rows = split.development if spec.cv.scope == "development" else None
        cv = cross_validate(
            matrix, hp, spec.cv, rows=rows, seed=spec.seed, nthread=spec.n_jobs, progress=progress
        )
    return fit_evaluate(
        matrix,
        split,
        spec,
        dataset_sha256=dataset_sha256,
        fitted_flow_ids=fitted_flow_ids,
        cv=cv,
        progress=progress,
    )
