"""Training-only steps that need the whole frame: balance data and split data.

With `training=True` (fitting a flow, or `transform(..., training=True)`) they resample or partition
the materialised frame with a fixed seed. Everywhere else (inference batches, the record path, exported
scripts) they pass rows through unchanged: a split's every output frame is its input frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import polars as pl
import pydantic

from tideml.wrangle.transforms.base import (
    Env,
    EnvFn,
    NoState,
    Operator,
    Runtime,
    StepParams,
    register,
)
from tideml.wrangle.types import Schema

__all__ = ["Balance", "BalanceParams", "Split", "SplitParams"]


class BalanceParams(StepParams):
    """`{"op": "balance", "target": "fraud", "method": "smote", "ratio": 1.0, "seed": 42}`."""

    op: Literal["balance"] = "balance"
    target: str = pydantic.Field(description="The binary label column.")
    method: Literal["random_oversample", "random_undersample", "smote"]
    ratio: float = pydantic.Field(1.0, gt=0.0, le=1.0, description="Minority / majority count afterwards.")
    seed: int = pydantic.Field(0, ge=0)
    k_neighbors: int = pydantic.Field(5, ge=1, description="smote: neighbours to interpolate between.")


@register
class Balance(Operator[BalanceParams, NoState]):
    """Rebalance a binary label (training only): random over- or under-sampling, or SMOTE.

    New rows are appended after the original ones. SMOTE (imbalanced-learn) interpolates every other
    column, so they must all be numeric or bool without missing values; interpolated int64 columns are
    rounded to the nearest integer and bools thresholded at 0.5, so the schema is unchanged.
    """

    op = "balance"
    params_model = BalanceParams
    training_only = True
    summary = "balance data (random over/under-sampling, SMOTE; training only)"

    def _check(self, schema: Schema) -> None:
        self.ctx.require(schema, self.params.target, {"int64", "string", "bool"})
        if self.params.method == "smote":
            for column, dtype in schema.items():
                if column != self.params.target and dtype not in ("int64", "float64", "bool"):
                    raise self.ctx.error(
                        f"wrong type: SMOTE interpolates every column, and this one is {dtype}",
                        column,
                        "encode or drop non-numeric columns before balancing, or use random_oversample",
                    )

    def fit(self, frames: Mapping[str, pl.LazyFrame], schemas: Mapping[str, Schema]) -> NoState:
        self._check(schemas[self.frame])
        return NoState()

    def output_schemas(self, schemas: Mapping[str, Schema], state: NoState) -> dict[str, Schema]:
        self._check(schemas[self.frame])
        return {self.into: dict(schemas[self.frame])}

    def source(self, schemas: Mapping[str, Schema], state: NoState) -> list[str]:
        return [f"frames[{self.into!r}] = frames[{self.frame!r}]  # training only: rows pass through"]

    def record(self, schemas: Mapping[str, Schema], state: NoState) -> EnvFn:
        frame, into = self.frame, self.into

        def passthrough(env: Env, rt: Runtime) -> None:
            row = env[frame]
            env[into] = row if frame == into or row is None else dict(row)

        return passthrough

    def apply_training(
        self, frames: dict[str, pl.DataFrame], schemas: Mapping[str, Schema], state: NoState, rt: Runtime
    ) -> dict[str, pl.DataFrame]:
        p = self.params
        df = frames[self.frame]
        y = df.get_column(p.target)
        if y.null_count():
            raise self.ctx.error(
                "the label has missing values", p.target, "drop or fill them before balancing"
            )
        counts = y.value_counts(sort=True).sort(["count", p.target], descending=[True, False])
        if counts.height != 2:
            raise self.ctx.error(
                f"balancing needs a binary label; found {counts.height} classes", p.target, "check the target"
            )
        major, minor = counts.get_column(p.target).to_list()
        n_major, n_minor = counts.get_column("count").to_list()
        rng = np.random.default_rng(p.seed)
        if p.method == "random_oversample":
            want = round(p.ratio * n_major)
            if want > n_minor:
                minority = np.flatnonzero((y == minor).to_numpy())
                extra = rng.choice(minority, size=want - n_minor, replace=True)
                df = pl.concat([df, df[extra]])
        elif p.method == "random_undersample":
            keep = max(1, round(n_minor / p.ratio))
            if keep < n_major:
                majority = np.flatnonzero((y == major).to_numpy())
                dropped = np.setdiff1d(majority, rng.choice(majority, size=keep, replace=False))
                mask = np.ones(df.height, dtype=bool)
                mask[dropped] = False
                df = df.filter(pl.Series(mask))
        else:
            df = self._smote(df, minor, n_minor, n_major)
        return {self.into: df}

    def _smote(self, df: pl.DataFrame, minor: Any, n_minor: int, n_major: int) -> pl.DataFrame:
        from imblearn.over_sampling import SMOTE

        p = self.params
        if round(p.ratio * n_major) <= n_minor:
            return df
        if n_minor < 2:
            raise self.ctx.error("SMOTE needs at least 2 minority rows", p.target)
        features = [c for c in df.columns if c != p.target]
        x = df.select(pl.col(features).cast(pl.Float64)).to_numpy()
        if not np.isfinite(x).all():
            raise self.ctx.error(
                "SMOTE needs values everywhere; a feature is missing or infinite", None, "impute first"
            )
        y = df.get_column(p.target).to_numpy()
        smote = SMOTE(
            sampling_strategy=p.ratio, k_neighbors=min(p.k_neighbors, n_minor - 1), random_state=p.seed
        )
        x_all, y_all = smote.fit_resample(x, y)
        new_x, new_y = x_all[df.height :], y_all[df.height :]
        columns: dict[str, Any] = {}
        for i, name in enumerate(features):
            dtype = df.schema[name]
            values = new_x[:, i]
            if dtype == pl.Boolean:
                columns[name] = pl.Series(name, values >= 0.5)
            elif dtype.is_integer():
                columns[name] = pl.Series(name, np.rint(values).astype(np.int64))
            else:
                columns[name] = pl.Series(name, values)
        columns[p.target] = pl.Series(p.target, new_y, dtype=df.schema[p.target])
        synthetic = pl.DataFrame(columns).select(df.columns).cast(df.schema)
        return pl.concat([df, synthetic])


class SplitParams(StepParams):
    """`{"op": "split", "frames": {"train": 0.8, "test": 0.2}, "method": "key", "key": ["policy_id"]}`."""

    op: Literal["split"] = "split"
    frames: dict[str, float] = pydantic.Field(description="Output frame → fraction; fractions sum to 1.")
    method: Literal["random", "stratified", "key"] = "random"
    stratify_by: str | None = pydantic.Field(None, description="stratified: the column kept in proportion.")
    key: list[str] | None = pydantic.Field(
        None, min_length=1, description="key: rows of a key stay together."
    )
    seed: int = pydantic.Field(0, ge=0)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> SplitParams:
        if len(self.frames) < 2:
            raise ValueError("a split needs at least two output frames")
        if any(not (0.0 < f <= 1.0) for f in self.frames.values()):
            raise ValueError("every fraction must be in (0, 1]")
        if not math.isclose(sum(self.frames.values()), 1.0, abs_tol=1e-9):
            raise ValueError("the fractions must sum to 1")
        if (self.method == "stratified") != (self.stratify_by is not None):
            raise ValueError("'stratify_by' goes with method: stratified, and only with it")
        if (self.method == "key") != (self.key is not None):
            raise ValueError("'key' goes with method: key, and only with it")
        if self.into is not None:
            raise ValueError("a split writes the frames named in 'frames'; 'into' does not apply")
        return self


def _cuts(n: int, fractions: list[float]) -> list[int]:
    bounds, total = [0], 0.0
    for fraction in fractions:
        total += fraction
        bounds.append(round(total * n))
    bounds[-1] = n
    return bounds


@register
class Split(Operator[SplitParams, NoState]):
    """Partition rows into named frames (training only): randomly, stratified, or by key (entity split).

    Exact proportions (rounded) with a seeded permutation; rows keep their original order within each
    part. A key split permutes the distinct keys, so no key is on two sides.
    """

    op = "split"
    params_model = SplitParams
    training_only = True
    summary = "split data (random, stratified, by key; training only)"

    def writes(self) -> list[str]:
        return list(self.params.frames)

    def _check(self, schema: Schema) -> None:
        if self.params.stratify_by is not None:
            self.ctx.require(schema, self.params.stratify_by)
        for column in self.params.key or []:
            self.ctx.require(schema, column)

    def fit(self, frames: Mapping[str, pl.LazyFrame], schemas: Mapping[str, Schema]) -> NoState:
        self._check(schemas[self.frame])
        return NoState()

    def output_schemas(self, schemas: Mapping[str, Schema], state: NoState) -> dict[str, Schema]:
        self._check(schemas[self.frame])
        return {name: dict(schemas[self.frame]) for name in self.params.frames}

    def source(self, schemas: Mapping[str, Schema], state: NoState) -> list[str]:
        return [
            f"frames[{name!r}] = frames[{self.frame!r}]  # training only: every part is the whole frame"
            for name in self.params.frames
        ]

    def record(self, schemas: Mapping[str, Schema], state: NoState) -> EnvFn:
        frame, names = self.frame, list(self.params.frames)

        def passthrough(env: Env, rt: Runtime) -> None:
            row = env[frame]
            for name in names:
                env[name] = None if row is None else dict(row)

        return passthrough

    def apply_training(
        self, frames: dict[str, pl.DataFrame], schemas: Mapping[str, Schema], state: NoState, rt: Runtime
    ) -> dict[str, pl.DataFrame]:
        p = self.params
        df = frames[self.frame]
        rng = np.random.default_rng(p.seed)
        fractions = list(p.frames.values())
        part = np.zeros(df.height, dtype=np.int64)
        if p.method == "key":
            keys = df.select(p.key).unique().sort(p.key, nulls_last=True).with_row_index("_key_index")
            order = rng.permutation(keys.height)
            key_part = np.zeros(keys.height, dtype=np.int64)
            bounds = _cuts(keys.height, fractions)
            for i in range(len(fractions)):
                key_part[order[bounds[i] : bounds[i + 1]]] = i
            keys = keys.with_columns(pl.Series("_part", key_part))
            part = (
                df.select(p.key)
                .join(keys, on=p.key, how="left", nulls_equal=True, maintain_order="left")["_part"]
                .to_numpy()
            )
        else:
            if p.method == "stratified":
                assert p.stratify_by is not None
                labels = df.get_column(p.stratify_by)
                groups = [
                    np.flatnonzero((labels == v).fill_null(False).to_numpy())
                    if v is not None
                    else np.flatnonzero(labels.is_null().to_numpy())
                    for v in labels.unique().sort(nulls_last=True).to_list()
                ]
            else:
                groups = [np.arange(df.height)]
            for members in groups:
                order = members[rng.permutation(len(members))]
                bounds = _cuts(len(members), fractions)
                for i in range(len(fractions)):
                    part[order[bounds[i] : bounds[i + 1]]] = i
        return {name: df.filter(pl.Series(part == i)) for i, name in enumerate(p.frames)}
