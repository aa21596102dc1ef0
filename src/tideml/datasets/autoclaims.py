"""Synthetic auto-insurance claims in the article's raw schema, at any size, with a known fraud model.

`generate_autoclaims` writes `customers` and `claims` (CSV or Parquet) with exactly the columns, column
order, dtypes and value sets of the article's raw files (`Unkown`, `policy_deductable` and `N/A` included)
and marginals close to theirs. Each policy has one customer row and one claim row; `policy_id` runs 1..N.

The label is drawn from a logistic model of the raw columns::

    logit P(fraud) = intercept + sum of the fixed terms in FRAUD_COEFFICIENTS
                     + log(female_fraud_odds_ratio)       if customer_gender == "Female"
                     + log(other_gender_fraud_odds_ratio) if customer_gender in ("Unkown", "Other")

More insurers in the past five years, more claims in the past year, a shorter tenure, a younger
customer, a theft or break-in, no police report, no authorities contacted, an unusual driver and a quiet
incident (few vehicles, injuries and witnesses) raise the odds. Male is the reference gender, so
`female_fraud_odds_ratio` sets the gender gap that bias tooling should find (1.0 removes it), and
`female_share_shift` moves customers from Male to Female (or back) to change the gender imbalance. The
intercept is calibrated on a fixed sample so that the mean fraud probability equals `fraud_rate` whatever
the other parameters. `docs/autoclaims-data.md` documents every term.

Generation streams in chunks of `CHUNK_POLICIES` policies; chunk i is a pure function of (seed, i), so the
output is byte-identical for the same seed, memory stays bounded at any size, and the first N policies of
a larger dataset equal the N-policy dataset. Files are written to a temporary name in the target folder and
renamed into place when complete.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Self

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pydantic

from tideml.datasets import _autoclaims_tables as t
from tideml.datasets._autoclaims_sampling import (
    FRAUD_COEFFICIENTS,
    FraudParameters,
    calibrate_intercept,
    chunk_rng,
    fraud_logit,
    gender_shares,
    sample_claims,
    sample_customers,
)
from tideml.errors import StoreUnavailable, ValidationError

__all__ = [
    "CHUNK_POLICIES",
    "CLAIMS_COLUMNS",
    "CUSTOMERS_COLUMNS",
    "FRAUD_COEFFICIENTS",
    "PROBABILITY_COLUMN",
    "AutoclaimsConfig",
    "AutoclaimsResult",
    "FileFormat",
    "autoclaims_frames",
    "generate_autoclaims",
    "iter_autoclaims",
    "oracle_auc",
]

CHUNK_POLICIES = 50_000
CLAIMS_COLUMNS = t.CLAIMS_COLUMNS
CUSTOMERS_COLUMNS = t.CUSTOMERS_COLUMNS
PROBABILITY_COLUMN = t.PROBABILITY_COLUMN
FileFormat = Literal["csv", "parquet"]
FILE_FORMATS: tuple[str, ...] = ("csv", "parquet")

_MIN_FEMALE_SHIFT = -t.GENDER_SHARES[1]
_MAX_FEMALE_SHIFT = t.GENDER_SHARES[0]
_FIXES: dict[str, str] = {
    "policies": "pass a whole number of policies of at least 1",
    "seed": "pass a whole number from 0 to 2**63 - 1",
    "fraud_rate": "pass a target fraud rate between 0 and 0.5 (the article's is 0.033)",
    "female_fraud_odds_ratio": "pass a positive odds multiplier; 1.0 means no gender gap",
    "other_gender_fraud_odds_ratio": "pass a positive odds multiplier; 1.0 means the same odds as Male",
    "female_share_shift": (
        f"pass a share between {_MIN_FEMALE_SHIFT} and {_MAX_FEMALE_SHIFT} (0 keeps the article's mix)"
    ),
}


class AutoclaimsConfig(pydantic.BaseModel):
    """What to generate: how many policies, the seed, and the parameters of the fraud model.

    Invalid values raise `tideml.errors.ValidationError` naming the field and the fix.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    policies: int = pydantic.Field(
        5000, ge=1, description="Number of policies (one customer and claim each)."
    )
    seed: int = pydantic.Field(0, ge=0, lt=2**63, description="Seed; the same seed gives the same bytes.")
    fraud_rate: float = pydantic.Field(0.033, gt=0.0, le=0.5, description="Target overall fraud rate.")
    female_fraud_odds_ratio: float = pydantic.Field(
        0.3, gt=0.0, le=100.0, description="Odds multiplier of fraud for Female customers relative to Male."
    )
    other_gender_fraud_odds_ratio: float = pydantic.Field(
        0.2, gt=0.0, le=100.0, description="Odds multiplier of fraud for Unkown and Other relative to Male."
    )
    female_share_shift: float = pydantic.Field(
        0.0,
        ge=_MIN_FEMALE_SHIFT,
        le=_MAX_FEMALE_SHIFT,
        description="Share of all customers moved from Male to Female (negative: from Female to Male).",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise _wrap_pydantic_error(exc) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate a mapping into a config; errors become `tideml.errors.ValidationError`."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise _wrap_pydantic_error(exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, *args: Any, **kwargs: Any) -> Self:
        """Validate JSON into a config; errors become `tideml.errors.ValidationError`."""
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise _wrap_pydantic_error(exc) from None

    @classmethod
    def build(cls, config: AutoclaimsConfig | None = None, **settings: Any) -> AutoclaimsConfig:
        """`config` (or the defaults) with `settings` overriding its fields, validated."""
        base = config.model_dump() if config is not None else {}
        return cls(**{**base, **settings})

    @property
    def fraud_parameters(self) -> FraudParameters:
        """The parameters the fraud model depends on (the intercept is calibrated from them)."""
        return FraudParameters(
            fraud_rate=self.fraud_rate,
            female_fraud_odds_ratio=self.female_fraud_odds_ratio,
            other_gender_fraud_odds_ratio=self.other_gender_fraud_odds_ratio,
            female_share_shift=self.female_share_shift,
        )

    @property
    def gender_shares(self) -> dict[str, float]:
        """Expected share of each `customer_gender` value after `female_share_shift`."""
        shares = gender_shares(self.female_share_shift)
        return {gender: float(share) for gender, share in zip(t.GENDERS, shares, strict=True)}

    @property
    def intercept(self) -> float:
        """The calibrated intercept of the fraud model's log-odds."""
        return calibrate_intercept(self.fraud_parameters)


def _wrap_pydantic_error(exc: pydantic.ValidationError) -> ValidationError:
    """The first problem as a tideml error naming its field and fix; the others are listed in the message."""
    errors = exc.errors()
    inner = (errors[0].get("ctx") or {}).get("error")
    if isinstance(inner, ValidationError):  # raised by our own __init__ under model_validate
        return inner

    def field_of(error: Any) -> str:
        return ".".join(str(part) for part in error["loc"])

    first = errors[0]
    field = field_of(first) or None
    message = f"{first['msg']} (got {first['input']!r})"
    for other in errors[1:]:
        message += f"; also {field_of(other)}: {other['msg']} (got {other['input']!r})"
    if first["type"] == "extra_forbidden":
        fix = "use only these settings: " + ", ".join(AutoclaimsConfig.model_fields)
    else:
        fix = _FIXES.get(field or "", "see the AutoclaimsConfig field descriptions")
    return ValidationError(message, obj="AutoclaimsConfig", field=field, fix=fix)


@dataclass(frozen=True)
class AutoclaimsResult:
    """What `generate_autoclaims` wrote."""

    config: AutoclaimsConfig
    file_format: FileFormat
    customers_path: Path
    claims_path: Path
    fraud_count: int
    with_probability: bool
    elapsed_seconds: float

    @property
    def policies(self) -> int:
        """Rows in each file (one customer and one claim per policy)."""
        return self.config.policies

    @property
    def fraud_rate(self) -> float:
        """Share of generated claims labelled fraud."""
        return self.fraud_count / self.config.policies

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what `tide data generate --json` prints)."""
        files = {
            name: {"path": str(path), "rows": self.policies, "bytes": path.stat().st_size}
            for name, path in (("customers", self.customers_path), ("claims", self.claims_path))
        }
        return {
            "policies": self.policies,
            "seed": self.config.seed,
            "format": self.file_format,
            "with_probability": self.with_probability,
            "files": files,
            "fraud_count": self.fraud_count,
            "fraud_rate": self.fraud_rate,
            "elapsed_seconds": self.elapsed_seconds,
            "config": self.config.model_dump(),
        }


# ---------------------------------------------------------------------------------------------- frames
_CATEGORIES: dict[str, pl.Series] = {
    name: pl.Series(name, values, dtype=pl.String)
    for name, values in (
        ("policy_state", t.STATES),
        ("policy_liability", t.LIABILITIES),
        ("customer_gender", t.GENDERS),
        ("customer_education", t.EDUCATIONS),
        ("driver_relationship", t.DRIVER_RELATIONSHIPS),
        ("incident_type", t.INCIDENT_TYPES),
        ("collision_type", t.COLLISION_TYPES),
        ("incident_severity", t.SEVERITIES),
        ("authorities_contacted", t.AUTHORITIES),
        ("police_report_available", t.YES_NO),
    )
}


def _frame(columns: dict[str, npt.NDArray[np.generic]], order: tuple[str, ...]) -> pl.DataFrame:
    series = [
        _CATEGORIES[name].gather(columns[name]) if name in _CATEGORIES else pl.Series(name, columns[name])
        for name in order
    ]
    return pl.DataFrame(series)


def _chunk(
    config: AutoclaimsConfig, index: int, intercept: float, with_probability: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Policies index*CHUNK_POLICIES+1 .. of the dataset (a full chunk, cut to the requested size)."""
    first = index * CHUNK_POLICIES
    size = min(CHUNK_POLICIES, config.policies - first)
    rng = chunk_rng(config.seed, index)
    customers = sample_customers(rng, CHUNK_POLICIES, config.female_share_shift)
    claims = sample_claims(rng, customers["auto_year"])
    probability = 1.0 / (1.0 + np.exp(-(intercept + fraud_logit(customers, claims, config.fraud_parameters))))
    claims["fraud"] = (rng.random(CHUNK_POLICIES) < probability).astype(np.int64)
    policy_id = np.arange(first + 1, first + 1 + CHUNK_POLICIES, dtype=np.int64)
    customers["policy_id"] = claims["policy_id"] = policy_id
    order = t.CLAIMS_COLUMNS
    if with_probability:
        claims[PROBABILITY_COLUMN] = probability
        order = (*order, PROBABILITY_COLUMN)
    customers = {name: column[:size] for name, column in customers.items()}
    claims = {name: column[:size] for name, column in claims.items()}
    return _frame(customers, t.CUSTOMERS_COLUMNS), _frame(claims, order)


def iter_autoclaims(
    config: AutoclaimsConfig | None = None, *, with_probability: bool = False, **settings: Any
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Yield (customers, claims) frames chunk by chunk, `CHUNK_POLICIES` policies at a time."""
    config = AutoclaimsConfig.build(config, **settings)
    intercept = config.intercept
    for index in range(math.ceil(config.policies / CHUNK_POLICIES)):
        yield _chunk(config, index, intercept, with_probability)


def autoclaims_frames(
    config: AutoclaimsConfig | None = None, *, with_probability: bool = False, **settings: Any
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The whole dataset in memory as (customers, claims); use `generate_autoclaims` for big sizes."""
    chunks = list(iter_autoclaims(config, with_probability=with_probability, **settings))
    return pl.concat([c for c, _ in chunks]), pl.concat([c for _, c in chunks])


# ---------------------------------------------------------------------------------------------- files
def _arrow_schema(columns: tuple[str, ...], dtypes: dict[str, str]) -> pa.Schema:
    kinds = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    return pa.schema([(name, kinds[dtypes.get(name, "float")]) for name in columns])


class _ChunkWriter:
    """Appends frames to one temporary file in the target folder; `commit` renames it into place."""

    def __init__(self, path: Path, file_format: FileFormat, schema: pa.Schema) -> None:
        self.path = path
        self._schema = schema
        # A hidden name beside the target, created with the umask's usual permissions (mkstemp's are 0600).
        self._temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        handle = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._file: IO[bytes] = os.fdopen(handle, "wb")
        self._parquet = None
        if file_format == "parquet":
            try:
                self._parquet = pq.ParquetWriter(self._file, schema, compression="zstd")
            except BaseException:
                self.discard()
                raise
        self._header = True

    def write(self, frame: pl.DataFrame) -> None:
        if self._parquet is not None:
            self._parquet.write_table(frame.to_arrow().cast(self._schema))
        else:
            frame.write_csv(self._file, include_header=self._header)
        self._header = False

    def commit(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temp, self.path)

    def discard(self) -> None:
        if self._parquet is not None:
            parquet, self._parquet = self._parquet, None
            if not self._file.closed:
                parquet.close()  # closed here, not by the garbage collector on a closed file
        if not self._file.closed:
            self._file.close()
        self._temp.unlink(missing_ok=True)


def _output_folder(out_dir: str | os.PathLike[str]) -> Path:
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ValidationError(
            "is a file, not a folder", obj=str(folder), field="out", fix="pass a folder to write into"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(
            f"cannot create the output folder: {exc.strerror}",
            obj=str(folder),
            field="out",
            fix="pick a writable folder",
        ) from exc
    return folder


def generate_autoclaims(
    out_dir: str | os.PathLike[str],
    config: AutoclaimsConfig | None = None,
    *,
    file_format: FileFormat = "csv",
    with_probability: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    **settings: Any,
) -> AutoclaimsResult:
    """Write `customers.<format>` and `claims.<format>` into `out_dir` and return what was written.

    `settings` override fields of `config` (e.g. `policies=10_000, seed=7`). `with_probability` adds the
    true fraud probability as a last claims column `fraud_probability`. `on_chunk(n)` is called after each
    chunk with the number of policies it held (for progress bars). Existing files are replaced atomically.
    """
    started = time.perf_counter()
    config = AutoclaimsConfig.build(config, **settings)
    if file_format not in FILE_FORMATS:
        raise ValidationError(
            f"unknown file format {file_format!r}",
            obj="generate_autoclaims",
            field="file_format",
            fix="use 'csv' or 'parquet'",
        )
    folder = _output_folder(out_dir)
    claims_columns = (*t.CLAIMS_COLUMNS, PROBABILITY_COLUMN) if with_probability else t.CLAIMS_COLUMNS
    fraud_count = 0
    with ExitStack() as stack:
        try:
            writers: list[_ChunkWriter] = []
            for name, columns, dtypes in (
                ("customers", t.CUSTOMERS_COLUMNS, t.CUSTOMERS_DTYPES),
                ("claims", claims_columns, t.CLAIMS_DTYPES),
            ):
                schema = _arrow_schema(columns, dtypes)
                writer = _ChunkWriter(folder / f"{name}.{file_format}", file_format, schema)
                stack.callback(writer.discard)
                writers.append(writer)
            customers_writer, claims_writer = writers
            for customers, claims in iter_autoclaims(config, with_probability=with_probability):
                customers_writer.write(customers)
                claims_writer.write(claims)
                fraud_count += int(claims["fraud"].sum())
                if on_chunk is not None:
                    on_chunk(claims.height)
            for writer in writers:
                writer.commit()
        except OSError as exc:  # disk full, permissions: the temporary files are removed on the way out
            raise StoreUnavailable(
                f"cannot write the data: {exc.strerror or exc}",
                obj=str(folder),
                field="out",
                fix="pick a writable folder with enough free space",
            ) from exc
    return AutoclaimsResult(
        config=config,
        file_format=file_format,
        customers_path=customers_writer.path,
        claims_path=claims_writer.path,
        fraud_count=fraud_count,
        with_probability=with_probability,
        elapsed_seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------- oracle
def _read_columns(source: Any, columns: list[str]) -> pl.DataFrame:
    if isinstance(source, pl.DataFrame):
        frame = source
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            candidates = [path / "claims.parquet", path / "claims.csv"]
            path = next((p for p in candidates if p.exists()), candidates[-1])
        if not path.exists():
            raise ValidationError(
                "no such file",
                obj=str(path),
                fix="pass a claims file or the folder `tide data generate` wrote",
            )
        try:
            if path.suffix == ".parquet":
                schema_names = pq.read_schema(path).names
                frame = pl.read_parquet(path, columns=[c for c in columns if c in schema_names])
            else:
                header = pl.read_csv(path, n_rows=0).columns
                frame = pl.read_csv(path, columns=[c for c in columns if c in header])
        except (OSError, pl.exceptions.PolarsError, pa.ArrowException) as exc:
            raise ValidationError(
                f"cannot read it: {exc}", obj=str(path), fix="pass a CSV or Parquet claims file"
            ) from exc
    elif type(source).__module__.startswith("pandas"):
        frame = pl.from_pandas(source[[c for c in columns if c in source.columns]])
    else:
        raise ValidationError(
            f"unsupported source type {type(source).__name__}",
            obj="oracle_auc",
            field="source",
            fix="pass a polars or pandas DataFrame, or a path to a claims file",
        )
    return frame


def oracle_auc(
    source: pl.DataFrame | str | os.PathLike[str] | Any,
    *,
    probability_column: str = PROBABILITY_COLUMN,
    label_column: str = "fraud",
) -> float:
    """The best ROC-AUC any model can reach: the AUC of the true fraud probability against the label.

    `source` is a claims frame (polars or pandas), a claims CSV/Parquet file, or the folder that
    `generate_autoclaims` wrote; it must hold the probability column (generate `with_probability=True`).
    """
    from sklearn.metrics import roc_auc_score

    frame = _read_columns(source, [probability_column, label_column])
    for column, fix in (
        (probability_column, "generate the data with --with-probability (with_probability=True)"),
        (label_column, "pass claims with the fraud label"),
    ):
        if column not in frame.columns:
            raise ValidationError("column is missing", obj="oracle_auc", field=column, fix=fix)
    labels = frame[label_column].to_numpy()
    if len(np.unique(labels)) != 2:
        raise ValidationError(
            "needs both fraud and non-fraud claims",
            obj="oracle_auc",
            field=label_column,
            fix="generate more policies so both classes occur",
        )
    return float(roc_auc_score(labels, frame[probability_column].to_numpy()))
