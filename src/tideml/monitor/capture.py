"""Windows of captured requests, and late labels, from any frame or from capture files.

A window is any Polars or pandas frame, or files: a path, a folder (every `.jsonl`/`.ndjson`/`.json`/
`.parquet`/`.csv` file under it, hidden and temporary files skipped) or a glob (`capture/**/*.jsonl`).
Capture records are flattened whatever their nesting:

- flat: `{"inference_id", "time", <features...>, "probability"}`;
- nested: `{"inference_id", "time", "request": {...features...}, "response": {"probability": ...}}`
  (every struct column is unnested, its fields becoming columns);
- the managed layout: `{"captureData": {"endpointInput": {"data", "encoding"}, "endpointOutput": {...}},
  "eventMetadata": {"inferenceId", "eventId", "inferenceTime"}}` with JSON (or, given `feature_names`, CSV)
  payloads.

Files are only read, never written. A malformed JSON line is an error naming the file and the line — except
an unterminated last line, which is a record still being written and is skipped with a note.
Labels (`read_labels`) are flat `{inference_id, label}` rows or the managed ground-truth layout
`{"groundTruthData": {"data", "encoding"}, "eventMetadata": {"eventId"}}`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pydantic

from tideml.artifacts import file_sha256
from tideml.errors import NotFound, ValidationError

__all__ = [
    "CAPTURE_SUFFIXES",
    "CaptureFormat",
    "SourceFile",
    "Window",
    "as_frame",
    "read_labels",
    "read_window",
    "resolve_files",
]

CAPTURE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv")
ID_ALIASES = ("inference_id", "inferenceId", "event_id", "eventId", "request_id", "requestId")
TIME_ALIASES = ("time", "timestamp", "inference_time", "inferenceTime", "event_time", "captured_at")
PREDICTION_ALIASES = ("probability", "fraud_probability", "score", "prediction", "predictions")
LABEL_ALIASES = ("label", "ground_truth", "groundTruth", "actual", "target")


class CaptureFormat(pydantic.BaseModel):
    """Column names of captured records (aliases such as `inferenceId` or `timestamp` are recognised)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    id_column: str = "inference_id"
    time_column: str = "time"
    prediction_column: str | None = "probability"
    label_column: str = "label"
    feature_names: tuple[str, ...] | None = None
    include_shadow: bool = False
    variant: str | None = None
    metadata_columns: tuple[str, ...] = (
        "endpoint",
        "variant",
        "model_version",
        "shadow",
        "decision",
        "threshold",
    )


@dataclass(frozen=True)
class SourceFile:
    """A file a window was read from, with its content hash (for lineage)."""

    path: Path
    sha256: str
    size: int
    rows: int


@dataclass
class Window:
    """The rows to check and where they came from."""

    frame: pl.DataFrame
    files: list[SourceFile] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    source: str = "frame"
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Number of rows in the window."""
        return self.frame.height


# -- files ------------------------------------------------------------------------------------------------
def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def resolve_files(source: str | os.PathLike[str]) -> list[Path]:
    """The capture files a path, folder or glob names, sorted; hidden and temporary files skipped."""
    text = os.fspath(source)
    if _is_glob(text):
        paths = [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)]
    else:
        p = Path(text).expanduser()
        if p.is_dir():
            paths = [q for q in p.rglob("*") if q.suffix.lower() in CAPTURE_SUFFIXES]
        elif p.exists():
            return [p]
        else:
            raise NotFound(
                "no such file or folder", obj=text, fix="pass a capture file, a capture folder or a glob"
            )
    files = sorted(
        q
        for q in paths
        if q.is_file() and not q.name.startswith(".") and not q.name.endswith((".tmp", ".partial"))
    )
    return files


def _first_bad_line(path: Path) -> tuple[int, str, bool] | None:
    """(line number, problem, is_last_unterminated) of the first line that is not a JSON object."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    last_index = len(lines) - 1
    types: dict[str, tuple[str, int]] = {}
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        unterminated = i == last_index and not raw.endswith(b"\n")
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            return i + 1, f"not valid JSON ({exc})", unterminated
        if not isinstance(value, dict):
            return i + 1, f"a JSON {type(value).__name__} where a record object is expected", unterminated
        for key, v in value.items():
            kind = _kind(v)
            if kind == "null":
                continue
            seen = types.get(key)
            if seen is None:
                types[key] = (kind, i + 1)
            elif not _compatible(seen[0], kind):
                return (
                    i + 1,
                    f"field {key!r} is a {kind} here but a {seen[0]} on line {seen[1]}",
                    False,
                )
    return None


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _compatible(a: str, b: str) -> bool:
    return a == b


def _read_jsonl(path: Path, notes: list[str]) -> pl.DataFrame:
    try:
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as exc:
        bad = _first_bad_line(path)
        if bad is None:
            raise ValidationError(
                f"cannot read the capture file: {exc}",
                obj=str(path),
                fix="check it is JSON lines, one record per line",
            ) from None
        line, problem, unterminated = bad
        if unterminated:
            # a record still being written by the capture process: read everything before it
            text = path.read_bytes()
            cut = text.rfind(b"\n")
            notes.append(f"{path}: skipped the unterminated last line {line} (still being written?)")
            if cut < 0:
                return pl.DataFrame()
            try:
                import io

                return pl.read_ndjson(io.BytesIO(text[: cut + 1]), infer_schema_length=None)
            except pl.exceptions.PolarsError:
                pass
        raise ValidationError(
            problem,
            obj=str(path),
            field=f"line {line}",
            fix="fix or remove that line; a monitor run never modifies capture files",
        ) from None


def _read_file(path: Path, notes: list[str]) -> pl.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(path, notes)
        if suffix == ".json":
            head = path.read_bytes()[:1].strip()
            if head == b"[":
                try:
                    data = orjson.loads(path.read_bytes())
                except orjson.JSONDecodeError as exc:
                    raise ValidationError(
                        f"not valid JSON ({exc})", obj=str(path), fix="fix the JSON array of records"
                    ) from None
                return pl.DataFrame(data) if data else pl.DataFrame()
            return _read_jsonl(path, notes)
        if suffix == ".parquet":
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=10_000)
    except ValidationError:
        raise
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ValidationError(
            f"cannot read it: {str(exc).splitlines()[0]}",
            obj=str(path),
            fix="pass a readable JSON-lines, Parquet or CSV capture file",
        ) from None
    raise ValidationError(
        f"unsupported file type {suffix!r}",
        obj=str(path),
        fix=f"use one of {', '.join(CAPTURE_SUFFIXES)}",
    )


# -- normalisation --------------------------------------------------------------------------------------
def _unnest_all(frame: pl.DataFrame) -> pl.DataFrame:
    for _ in range(8):
        structs = [n for n, t in frame.schema.items() if isinstance(t, pl.Struct)]
        if not structs:
            return frame
        for name in structs:
            fields = [f.name for f in frame.schema[name].fields]  # type: ignore[attr-defined]
            taken = set(frame.columns) - {name}
            renamed = [
                pl.col(name).struct.field(f).alias(f if f not in taken else f"{name}.{f}") for f in fields
            ]
            frame = frame.with_columns(renamed).drop(name) if fields else frame.drop(name)
    return frame


def _parse_payload(
    series: pl.Series, encoding: pl.Series | None, names: Sequence[str] | None, what: str
) -> pl.DataFrame:
    enc = (encoding.drop_nulls().unique().to_list() if encoding is not None else []) or ["JSON"]
    if any(str(e).upper() == "CSV" for e in enc):
        if not names:
            raise ValidationError(
                f"CSV-encoded {what} payloads have no column names",
                obj="capture",
                field="feature_names",
                fix="pass CaptureFormat(feature_names=(...)) in the model's feature order",
            )
        parts = series.str.split(",")
        return pl.DataFrame(
            {
                n: parts.list.get(i, null_on_oob=True).str.strip_chars().cast(pl.Float64, strict=False)
                for i, n in enumerate(names)
            }
        )
    decoded = series.str.json_decode(infer_schema_length=None)
    if isinstance(decoded.dtype, pl.Struct):
        return _unnest_all(decoded.to_frame("payload").unnest("payload"))
    return decoded.cast(pl.Float64, strict=False).to_frame("value")


def _normalise_managed(frame: pl.DataFrame, fmt: CaptureFormat) -> pl.DataFrame:
    cd = frame["captureData"]
    inp = cd.struct.field("endpointInput")
    out_cols: list[pl.Series] = []
    parts: list[pl.DataFrame] = []
    features = _parse_payload(
        inp.struct.field("data"),
        inp.struct.field("encoding") if "encoding" in [f.name for f in inp.dtype.fields] else None,  # type: ignore[attr-defined]
        fmt.feature_names,
        "endpointInput",
    )
    parts.append(features)
    if "endpointOutput" in [f.name for f in cd.dtype.fields]:  # type: ignore[attr-defined]
        outp = cd.struct.field("endpointOutput")
        response = _parse_payload(outp.struct.field("data"), None, None, "endpointOutput")
        if response.columns == ["value"] and fmt.prediction_column:
            response = response.rename({"value": fmt.prediction_column})
        parts.append(response.select([c for c in response.columns if c not in features.columns]))
    if "eventMetadata" in frame.columns:
        meta = frame["eventMetadata"]
        names = [f.name for f in meta.dtype.fields]  # type: ignore[attr-defined]
        ident = "inferenceId" if "inferenceId" in names else ("eventId" if "eventId" in names else None)
        if ident is not None:
            ids = meta.struct.field(ident)
            if ident == "inferenceId" and "eventId" in names:
                ids = pl.select(pl.coalesce(ids, meta.struct.field("eventId"))).to_series()
            out_cols.append(ids.alias(fmt.id_column))
        if "inferenceTime" in names:
            out_cols.append(meta.struct.field("inferenceTime").alias(fmt.time_column))
    return pl.concat([pl.DataFrame(out_cols), *parts], how="horizontal")


def _rename_aliases(frame: pl.DataFrame, target: str | None, aliases: Sequence[str]) -> pl.DataFrame:
    if target is None or target in frame.columns:
        return frame
    for alias in aliases:
        if alias in frame.columns:
            return frame.rename({alias: target})
    return frame


def _parse_time(series: pl.Series, where: str) -> pl.Series:
    name = series.name
    if isinstance(series.dtype, pl.Datetime):
        if series.dtype.time_zone is None:
            return series.dt.replace_time_zone("UTC")
        return series.dt.convert_time_zone("UTC")
    if series.dtype == pl.Date:
        return series.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if series.dtype.is_numeric():
        values = series.cast(pl.Float64)
        top = values.abs().max()
        scale = 1e6 if top is None or float(top) < 1e11 else (1e3 if float(top) < 1e14 else 1.0)  # type: ignore[arg-type]
        return (values * scale).cast(pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias(name)
    if series.dtype == pl.String:
        parsed = series.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
        failed = parsed.is_null() & series.is_not_null()
        if failed.any():
            out: list[datetime | None] = []
            for i, v in enumerate(series.to_list()):
                if v is None:
                    out.append(None)
                    continue
                try:
                    dt = datetime.fromisoformat(v)
                except ValueError:
                    raise ValidationError(
                        f"time {v!r} of row {i + 1} is not an ISO 8601 timestamp",
                        obj=where,
                        field=name,
                        fix="write times as ISO 8601 (2026-01-31T12:00:00Z) or epoch seconds",
                    ) from None
                out.append(dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC))
            return pl.Series(name, out, dtype=pl.Datetime("us", "UTC"))
        return parsed
    raise ValidationError(
        f"time column has type {series.dtype}",
        obj=where,
        field=name,
        fix="use ISO 8601 strings or epoch seconds",
    )


def _decode_json_columns(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """Columns that hold JSON text (how Parquet captures store nested values) decoded to structs/lists."""
    for name in names:
        if name in frame.columns and frame.schema[name] == pl.String:
            first = frame[name].drop_nulls().head(1).to_list()
            if first and str(first[0]).lstrip()[:1] in ("{", "["):
                frame = frame.with_columns(frame[name].str.json_decode(infer_schema_length=None))
    return frame


def _is_serving(frame: pl.DataFrame) -> bool:
    schema = frame.schema
    if "features" not in schema or "output" not in schema:
        return False
    feats = schema["features"]
    return isinstance(feats, pl.Struct) and {f.name for f in feats.fields} >= {"names", "rows"}


def _normalise_serving(frame: pl.DataFrame, fmt: CaptureFormat, where: str) -> pl.DataFrame:
    """tideml serving's events (one per request, `features.rows` and `output` aligned) → one row per record.

    A request with several records gives them the ids `<inference_id>/<index>` (0-based); a single-record
    request keeps its inference id.
    """
    if "shadow" in frame.columns and not fmt.include_shadow:
        frame = frame.filter(~pl.col("shadow").fill_null(False))
    if fmt.variant is not None and "variant" in frame.columns:
        frame = frame.filter(pl.col("variant") == fmt.variant)
    keep = [c for c in frame.columns if c not in ("features", "output", "input")]
    frame = frame.with_row_index("__event").with_columns(
        pl.col("features").struct.field("names").alias("__names"),
        pl.col("features").struct.field("rows").alias("__rows"),
        pl.col("output").alias("__out"),
    )
    counts = frame.select(
        (pl.col("__rows").list.len() != pl.col("__out").list.len()).arg_true().alias("bad")
    )["bad"]
    if counts.len():
        row = int(counts[0]) + 1
        raise ValidationError(
            "features.rows and output have different lengths",
            obj=where,
            field=f"record {row}",
            fix="each captured record needs one output; the capture file is damaged",
        )
    parts: list[pl.DataFrame] = []
    for names in frame["__names"].unique(maintain_order=True).to_list():
        if names is None:
            continue
        sub = frame.filter(pl.col("__names") == pl.lit(names, dtype=frame.schema["__names"]))
        sub = sub.with_columns(pl.col("__rows").list.len().alias("__n")).explode(["__rows", "__out"])
        sub = sub.with_columns(pl.int_range(pl.len()).over("__event").alias("__i"))
        if fmt.id_column in sub.columns:
            sub = sub.with_columns(
                pl.when(pl.col("__n") > 1)
                .then(pl.col(fmt.id_column).cast(pl.String) + "/" + pl.col("__i").cast(pl.String))
                .otherwise(pl.col(fmt.id_column).cast(pl.String))
                .alias(fmt.id_column)
            )
        rows = sub["__rows"].list.to_struct(fields=list(names)).struct.unnest()
        out = sub["__out"]
        outputs = out.struct.unnest() if isinstance(out.dtype, pl.Struct) else pl.DataFrame({"output": out})
        outputs = outputs.select([c for c in outputs.columns if c != "reasons"])
        kept = [c for c in keep if c not in rows.columns]
        # The event's own fields (model_version, variant…) win over the same names in the response.
        answer = [c for c in outputs.columns if c not in rows.columns and c not in kept]
        parts.append(pl.concat([sub.select(kept), rows, outputs.select(answer)], how="horizontal"))
    if not parts:
        return frame.select(keep).clear()
    return pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0]


def normalise(frame: pl.DataFrame, fmt: CaptureFormat, *, where: str = "capture") -> pl.DataFrame:
    """Flatten nested captures, apply column aliases and parse the time column to UTC."""
    frame = _decode_json_columns(
        frame, ("features", "output", "input", "request", "response", "captureData", "eventMetadata")
    )
    if "captureData" in frame.columns and isinstance(frame.schema["captureData"], pl.Struct):
        frame = _normalise_managed(frame, fmt)
    elif _is_serving(frame):
        frame = _normalise_serving(frame, fmt, where)
    frame = _unnest_all(frame)
    frame = _rename_aliases(frame, fmt.id_column, ID_ALIASES)
    frame = _rename_aliases(frame, fmt.time_column, TIME_ALIASES)
    frame = _rename_aliases(frame, fmt.prediction_column, PREDICTION_ALIASES)
    if fmt.time_column in frame.columns:
        frame = frame.with_columns(_parse_time(frame[fmt.time_column], where).alias(fmt.time_column))
    return frame


def as_frame(data: Any, *, what: str = "window") -> pl.DataFrame:
    """A Polars frame from a Polars or pandas frame (or a mapping of columns)."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        collected: pl.DataFrame = data.collect()
        return collected
    if type(data).__module__.startswith("pandas"):
        converted = pl.from_pandas(data)
        assert isinstance(converted, pl.DataFrame)
        return converted
    if isinstance(data, dict):
        return pl.DataFrame(data)
    raise ValidationError(
        f"unsupported {what} type {type(data).__name__}",
        obj=what,
        fix="pass a Polars or pandas DataFrame, a file, a folder or a glob of capture files",
    )


def _load(
    source: Any, *, start: datetime | None, hash_files: bool, notes: list[str]
) -> tuple[list[tuple[pl.DataFrame, str]], list[SourceFile], str]:
    """Raw frames (with where each came from), the files read and a label of the source."""
    if not isinstance(source, str | os.PathLike):
        return [(as_frame(source), "window")], [], "frame"
    parts: list[tuple[pl.DataFrame, str]] = []
    files: list[SourceFile] = []
    for path in resolve_files(source):
        if start is not None and datetime.fromtimestamp(path.stat().st_mtime, UTC) < start:
            continue  # written before the window opened: holds no record of it
        frame = _read_file(path, notes)
        if frame.height == 0:
            continue
        parts.append((frame, str(path)))
        files.append(
            SourceFile(
                path.resolve(), file_sha256(path) if hash_files else "", path.stat().st_size, frame.height
            )
        )
    return parts, files, os.fspath(source)


def read_window(
    source: Any,
    *,
    fmt: CaptureFormat | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    hash_files: bool = True,
) -> Window:
    """The rows of `source` whose time is in [start, end) (all rows when no bounds or no time column)."""
    fmt = fmt or CaptureFormat()
    notes: list[str] = []
    parts, files, label = _load(source, start=start, hash_files=hash_files, notes=notes)
    frames = [normalise(frame, fmt, where=where) for frame, where in parts]
    frame = (
        pl.concat(frames, how="diagonal_relaxed")
        if len(frames) > 1
        else (frames[0] if frames else pl.DataFrame())
    )
    if (start is not None or end is not None) and fmt.time_column in frame.columns:
        t = pl.col(fmt.time_column)
        cond = pl.lit(True)
        if start is not None:
            cond = cond & (t >= start)
        if end is not None:
            cond = cond & (t < end)
        frame = frame.filter(cond)
    elif (start is not None or end is not None) and frame.height:
        notes.append(f"no {fmt.time_column!r} column: the window holds every row, not only [{start}, {end})")
    return Window(frame=frame, files=files, start=start, end=end, source=label, notes=notes)


def _labels_of(frame: pl.DataFrame, fmt: CaptureFormat, where: str) -> pl.DataFrame:
    if "groundTruthData" in frame.columns and isinstance(frame.schema["groundTruthData"], pl.Struct):
        gt = frame["groundTruthData"].struct.field("data")
        cols = [gt.cast(pl.String).str.strip_chars().alias(fmt.label_column)]
        if "eventMetadata" in frame.columns:
            meta = frame["eventMetadata"]
            names = [f.name for f in meta.dtype.fields]  # type: ignore[attr-defined]
            key = "inferenceId" if "inferenceId" in names else "eventId"
            cols.append(meta.struct.field(key).alias(fmt.id_column))
        frame = pl.DataFrame(cols)
    else:
        frame = _unnest_all(frame)
        frame = _rename_aliases(frame, fmt.id_column, ID_ALIASES)
        frame = _rename_aliases(frame, fmt.label_column, LABEL_ALIASES)
    for column, fix in (
        (fmt.id_column, "give every label the inference id of its request"),
        (fmt.label_column, f"name the label column {fmt.label_column!r} (or label / ground_truth)"),
    ):
        if column not in frame.columns:
            raise ValidationError("column is missing from the labels", obj=where, field=column, fix=fix)
    labels = frame[fmt.label_column]
    if labels.dtype == pl.Boolean:
        labels = labels.cast(pl.Float64)
    values = labels.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    bad = values.is_null() & labels.is_not_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise ValidationError(
            f"label {labels[row]!r} of record {row + 1} is not a number",
            obj=f"{where}:{row + 1}" if where != "labels" else "labels",
            field=fmt.label_column,
            fix="write labels as 0/1 (or true/false)",
        )
    return pl.DataFrame(
        [frame[fmt.id_column].cast(pl.String).alias(fmt.id_column), values.alias(fmt.label_column)]
    )


def read_labels(source: Any, *, fmt: CaptureFormat | None = None) -> Window:
    """Ground-truth labels: one row per inference id (the last one when a label was corrected)."""
    fmt = fmt or CaptureFormat()
    notes: list[str] = []
    parts, files, label = _load(source, start=None, hash_files=True, notes=notes)
    frames = [_labels_of(frame, fmt, "labels" if where == "window" else where) for frame, where in parts]
    frame = (
        pl.concat(frames)
        if frames
        else pl.DataFrame(
            {fmt.id_column: pl.Series([], dtype=pl.String), fmt.label_column: pl.Series([], dtype=pl.Float64)}
        )
    )
    frame = frame.unique(subset=[fmt.id_column], keep="last", maintain_order=True)
    return Window(frame=frame, files=files, source=label, notes=notes)
