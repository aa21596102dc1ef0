"""`tide features …`: feature groups, records, ingest, SQL, datasets and compaction.

Everything a user stored (values, column and group names, descriptions, tags, paths) is printed as
`rich.text.Text`, never parsed as markup. Heavy imports (polars, yaml, the feature store,
the workspace, rich tables) happen inside the commands, so importing this module is cheap.
"""

from __future__ import annotations

import io
import json as jsonlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.cells import cell_len
from rich.text import Text

from tideml.artifacts import atomic_write, check_output_file
from tideml.cli._app import JsonOption, WorkspaceOption, app, console, emit_json, open_workspace
from tideml.errors import NotFound, ValidationError

if TYPE_CHECKING:
    import polars as pl
    from rich.table import Table

    from tideml.features.service import FeatureStore
    from tideml.features.spec import FeatureDefinition

__all__ = ["features_app"]

features_app = typer.Typer(
    help="The feature store: groups, records, ingest, SQL and point-in-time datasets.",
    no_args_is_help=True,
)

GroupArg = Annotated[str, typer.Argument(help="Feature group name.")]
ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]

QUERY_SUFFIXES = (".parquet", ".csv")


@contextmanager
def _store(workspace: Path | None) -> Iterator[FeatureStore]:
    with open_workspace(workspace) as ws:  # closing the workspace closes its feature store
        yield ws.features


def _parse_tags(tags: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags or []:
        key, sep, value = tag.partition("=")
        if not key.strip() or not sep:
            raise ValidationError(f"{tag!r} is not key=value", obj="tag", fix="write --tag team=fraud")
        out[key] = value
    return out


def _parse_feature(text: str) -> FeatureDefinition:
    from tideml.features.spec import FeatureDefinition, FeatureType

    name, sep, ftype = text.partition(":")
    types = {t.value.lower(): t for t in FeatureType}
    if not sep or ftype.lower().rstrip("!") not in types:
        raise ValidationError(
            f"{text!r} is not NAME:TYPE",
            obj="--add-feature",
            fix="write e.g. --add-feature discount:Fractional (types: Integral, Fractional, String)",
        )
    return FeatureDefinition(name=name, type=types[ftype.lower().rstrip("!")], nullable=True)


def _ttl_text(ttl: Mapping[str, Any] | None) -> str:
    """`{'unit': 'Days', 'value': 7}` -> `7 days`; no TTL -> `none`."""
    if not ttl:
        return "none"
    value = int(ttl["value"])
    unit = str(ttl["unit"]).lower()
    return f"{value} {unit.removesuffix('s') if value == 1 else unit}"


def _write_frame(frame: pl.DataFrame, target: Path) -> None:
    """Write `frame` as Parquet or CSV (by `target`'s suffix), atomically."""
    buf = io.BytesIO()
    if target.suffix.lower() == ".csv":
        frame.write_csv(buf)
    else:
        frame.write_parquet(buf)
    try:
        atomic_write(target, buf.getvalue())
    except OSError as exc:
        raise ValidationError(
            f"cannot write {target} ({exc.strerror or exc})",
            obj="query output",
            field="--output",
            fix="pick another path",
        ) from exc


# -- rendering -------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _width(text: str) -> int:
    return max((cell_len(line) for line in text.splitlines()), default=0)


def _new_table(headers: Sequence[str], *, first_no_wrap: bool = False) -> Table:
    """A table whose headers and cells are literal text and never cut short (long cells fold)."""
    from rich.table import Column, Table

    columns = [
        Column(Text(h), overflow="fold", no_wrap=first_no_wrap and i == 0) for i, h in enumerate(headers)
    ]
    return Table(*columns)


def _print_rows(headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None) -> None:
    """Print rows as a grid when its natural width fits the terminal, else transposed.

    Transposed, each column is a line (`name | value of row 1 | value of row 2 …`) and as many rows sit
    side by side as fit; the rest follow in further blocks. Nothing is truncated with an ellipsis.
    """
    if title is not None:  # a line of its own: a table title would wrap to the table's width
        console.print(Text(title, style="bold"), soft_wrap=True)
    # a table with the default box and padding is sum(widths) + 3 per column + 1 wide
    widths = [max([_width(h), *(_width(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    if not rows or sum(widths) + 3 * len(widths) + 1 <= console.width:
        table = _new_table(headers)
        for row in rows:
            table.add_row(*(Text(c) for c in row))
        console.print(table)
        return
    name_width = max(_width(h) for h in headers)
    labels = [f"row {i}" for i in range(1, len(rows) + 1)]
    record_widths = [max(_width(labels[j]), *(_width(c) for c in row)) for j, row in enumerate(rows)]
    start = 0
    while start < len(rows):
        stop, used = start + 1, name_width + record_widths[start] + 7
        while stop < len(rows) and used + record_widths[stop] + 3 <= console.width:
            used += record_widths[stop] + 3
            stop += 1
        table = _new_table(["column", *labels[start:stop]], first_no_wrap=True)
        for i, header in enumerate(headers):
            table.add_row(Text(header), *(Text(rows[j][i]) for j in range(start, stop)))
        console.print(table)
        start = stop


def _print_frame(frame: pl.DataFrame, limit: int) -> None:
    shown = frame.head(limit)
    _print_rows(frame.columns, [[_cell(v) for v in row] for row in shown.iter_rows()])
    if frame.height > shown.height:
        hidden = frame.height - shown.height
        rows = "row" if hidden == 1 else "rows"
        console.print(
            f"… {hidden:,} more {rows} ({frame.height:,} in all; use --json or --output)", highlight=False
        )


def _say(before: str, name: str, after: str = "") -> None:
    """Print a message naming `name` in bold; every part is literal text (no markup, no emoji codes)."""
    console.print(Text.assemble(before, (name, "bold"), after), soft_wrap=True)


def _jsonable(frame: pl.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = jsonlib.loads(frame.write_json())
    return out


@features_app.command("create")
def create(
    group: GroupArg,
    spec: Annotated[Path | None, typer.Option(help="YAML/JSON spec file (FeatureGroupSpec fields).")] = None,
    from_data: Annotated[Path | None, typer.Option(help="Infer features from a .csv/.parquet file.")] = None,
    record_id: Annotated[
        str | None, typer.Option(help="Record identifier column (with --from-data).")
    ] = None,
    event_time: Annotated[str | None, typer.Option(help="Event time column (with --from-data).")] = None,
    description: Annotated[str, typer.Option(help="Description (<= 128 characters).")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="A tag key=value (repeatable).")] = None,
    ttl: Annotated[str | None, typer.Option(help="Online TTL, e.g. 7d, 12h.")] = None,
    online: Annotated[bool, typer.Option("--online/--no-online", help="Enable the online store.")] = True,
    offline: Annotated[bool, typer.Option("--offline/--no-offline", help="Enable the offline store.")] = True,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Create a group from a spec file, or from a data file's schema."""
    with _store(workspace) as fs:
        if spec is not None:
            import yaml

            from tideml.features.spec import FeatureGroupSpec

            data = yaml.safe_load(spec.read_text(encoding="utf-8")) if spec.is_file() else None
            if not isinstance(data, dict):
                raise ValidationError(
                    "the spec file must hold a mapping", obj=f"file {spec}", fix="check the path"
                )
            data.setdefault("name", group)
            if data["name"] != group:
                raise ValidationError(
                    f"the spec names group {data['name']!r}",
                    obj=f"file {spec}",
                    field="name",
                    fix=f"use {group!r}",
                )
            fs.create_group(FeatureGroupSpec.from_dict(data))
        elif from_data is not None:
            if record_id is None or event_time is None:
                raise ValidationError(
                    "--from-data needs --record-id and --event-time",
                    obj=f"feature group {group}",
                    fix="add both",
                )
            fs.create_group_from_frame(
                group,
                from_data,
                record_identifier=record_id,
                event_time=event_time,
                description=description,
                tags=_parse_tags(tag),
                online=online,
                offline=offline,
                ttl=ttl,
            )
        else:
            raise ValidationError(
                "nothing to create the group from",
                obj=f"feature group {group}",
                fix="pass --spec FILE or --from-data FILE",
            )
        info = fs.describe_group(group)
    if json:
        emit_json(info)
    else:
        _say("created feature group ", group, f" ({len(info['features'])} features)")


@features_app.command("describe")
def describe(group: GroupArg, workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Show a group's spec, stores and freshness."""
    with _store(workspace) as fs:
        info = fs.describe_group(group)
    if json:
        emit_json(info)
        return
    console.print(Text(str(info["name"]), style="bold") + Text(f"  {info['description']}"))
    lines = [(key, _cell(info[key])) for key in ("record_identifier", "event_time", "schema_version")]
    lines += [(key, _cell(info[key])) for key in ("rows_ingested", "last_event_time")]
    lines.append(("online", f"{info['online']['enabled']} (ttl {_ttl_text(info['online']['ttl'])})"))
    lines.append(("offline", f"{info['offline_location']} ({info['offline_files']} files)"))
    for key, value in lines:
        console.print(Text(f"  {key:<18} {value}"))
    _print_rows(
        ["feature", "type", "nullable", "description"],
        [[f["name"], f["type"], str(f["nullable"]), _cell(f["description"])] for f in info["features"]],
    )


def _print_groups(groups: list[dict[str, Any]]) -> None:
    headers = ["name", "record id", "event time", "features", "online", "offline", "rows", "tags"]
    rows = [
        [
            g["name"],
            g["record_identifier"],
            g["event_time"],
            str(g["features"]),
            "yes" if g["online"] else "no",
            "yes" if g["offline"] else "no",
            f"{g['rows_ingested']:,}",
            ", ".join(f"{k}={v}" for k, v in g["tags"].items()),
        ]
        for g in groups
    ]
    _print_rows(headers, rows)


@features_app.command("list")
def list_groups(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """List every feature group."""
    with _store(workspace) as fs:
        groups = fs.list_groups()
    if json:
        emit_json(groups)
    else:
        _print_groups(groups)


@features_app.command("search")
def search(
    text: Annotated[str | None, typer.Argument(help="Text in the name or description.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="key or key=value (repeatable).")] = None,
    feature: Annotated[str | None, typer.Option(help="Text in a feature name.")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Find groups by name/description, tag and feature name."""
    with _store(workspace) as fs:
        groups = fs.search(text, tags=tag or [], feature=feature)
    if json:
        emit_json(groups)
    else:
        _print_groups(groups)


@features_app.command("update")
def update(
    ctx: typer.Context,
    group: GroupArg,
    add_feature: Annotated[list[str] | None, typer.Option(help="NAME:TYPE to add (repeatable).")] = None,
    ttl: Annotated[str | None, typer.Option(help="New online TTL (7d, 12h) or 'none'.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Add features or change the TTL or description (features are never removed or retyped)."""
    if not add_feature and ttl is None and description is None:
        ctx.fail("nothing to update: pass --add-feature, --ttl or --description")
    new_ttl: Any = "keep" if ttl is None else (None if ttl.lower() == "none" else ttl)
    with _store(workspace) as fs:
        fs.update_group(
            group,
            add_features=[_parse_feature(f) for f in add_feature or []],
            ttl=new_ttl,
            description=description,
        )
        info = fs.describe_group(group)
    if json:
        emit_json(info)
    else:
        _say("updated ", group, f" (schema version {info['schema_version']})")


@features_app.command("delete")
def delete(
    group: GroupArg,
    purge_offline: Annotated[
        bool, typer.Option(help="Delete the offline files instead of keeping them.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Delete a group (online records removed; offline files moved to _deleted/ unless purged)."""
    if not yes:
        typer.confirm(f"Delete feature group {group}?", abort=True)
    with _store(workspace) as fs:
        result = fs.delete_group(group, purge_offline=purge_offline)
    if json:
        emit_json(result)
    else:
        _say("deleted ", group)


@features_app.command("ingest")
def ingest(
    group: GroupArg,
    path: Annotated[Path, typer.Argument(help="A .csv or .parquet file.")],
    record_id: Annotated[
        str | None, typer.Option(help="Record identifier column (creates the group).")
    ] = None,
    event_time: Annotated[str | None, typer.Option(help="Event time column (creates the group).")] = None,
    event_time_value: Annotated[
        str | None,
        typer.Option(
            help="Fill a missing event-time column with this instant: 'now' (ingest time, epoch seconds) "
            "or an ISO-8601 time. The event time then means 'when ingested', not a business time."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Parallel writer threads.")] = 4,
    ignore_unknown_columns: Annotated[bool, typer.Option(help="Skip columns that are not features.")] = False,
    ttl: Annotated[str | None, typer.Option(help="Online TTL when the group is created (7d, 12h).")] = None,
    progress: ProgressOption = True,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Ingest a file into a group (created from the data's schema if it does not exist)."""
    with _store(workspace) as fs:
        report = fs.ingest(
            group,
            path,
            record_identifier=record_id,
            event_time=event_time,
            event_time_value=event_time_value,
            workers=workers,
            progress=progress and not json,
            ignore_unknown_columns=ignore_unknown_columns,
            ttl=ttl,
        )
    if json:
        emit_json(report.to_dict())
    else:
        duplicates = report.duplicates_in_batch
        _say(
            f"ingested {report.rows:,} rows into ",
            group,
            f" in {report.seconds:.2f} s ({report.offline_files} offline files, "
            f"{report.online_applied:,} online records updated"
            + (f", {duplicates:,} in-batch duplicates collapsed" if duplicates else "")
            + ")",
        )


@features_app.command("get")
def get(
    group: GroupArg,
    record_id: Annotated[str, typer.Argument(help="Record identifier.")],
    feature: Annotated[list[str] | None, typer.Option(help="Only these features (repeatable).")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Print the latest online record of an id."""
    with _store(workspace) as fs:
        record = fs.get_record(group, record_id, feature)
        expiry = fs.record_expiry(group, record_id) if record is not None else None
    if record is None:
        raise NotFound(
            "no online record (absent, deleted or expired)",
            obj=f"feature group {group}",
            field=f"record {record_id}",
            fix="check the id; ingest or put the record first",
        )
    if json:
        emit_json(record)
        return
    _print_rows(
        ["feature", "value"],
        [[key, _cell(value)] for key, value in record.items()],
        title=f"{group} {record_id}" + (f" (expires {expiry})" if expiry else ""),
    )


@features_app.command("put")
def put(
    group: GroupArg,
    record: Annotated[str, typer.Argument(help="The record as JSON, e.g. '{\"policy_id\": 1, …}'.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Write one record to the online and offline stores."""
    try:
        data = jsonlib.loads(record)
    except jsonlib.JSONDecodeError as exc:
        raise ValidationError(f"not JSON ({exc})", obj="record", fix="quote the JSON object") from exc
    with _store(workspace) as fs:
        fs.put_record(group, data)
    _say("put 1 record into ", group)


@features_app.command("delete-record")
def delete_record(
    group: GroupArg,
    record_id: Annotated[str, typer.Argument(help="Record identifier.")],
    event_time: Annotated[
        str, typer.Option(help="Event time of the delete (ISO-8601, epoch or 'now').")
    ] = "now",
    hard: Annotated[bool, typer.Option(help="Remove the online record instead of a soft delete.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Delete a record (a tombstone is written offline either way)."""
    with _store(workspace) as fs:
        report = fs.delete_record(group, record_id, event_time, mode="hard" if hard else "soft")
    online = {
        "deleted": f"{'hard' if hard else 'soft'}-deleted online",
        "newer-kept": "NOT deleted online: the stored record is newer than the delete and stays visible "
        "(give --event-time at or after its event time)",
        "absent": "no online record to delete",
        "skipped": "the group has no online store",
    }[report.online]
    offline = "; a tombstone was written offline" if report.offline else ""
    console.print(Text(f"{group} {record_id}: {online}{offline}"), soft_wrap=True)


@features_app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="One read-only SELECT over the group views (g and g_latest).")],
    output: Annotated[
        Path | None,
        typer.Option(help="Write the result to a .parquet or .csv file (its folder must exist)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to print (at least 1).")] = 50,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Run SQL over the offline store (DuckDB, read-only sandbox)."""
    target = None
    if output is not None:
        target = check_output_file(output, obj="query output", field="--output", suffixes=QUERY_SUFFIXES)
    with _store(workspace) as fs:
        frame = fs.query(sql)
    if target is not None:
        _write_frame(frame, target)
    if json:
        emit_json(_jsonable(frame))
    elif output is None:
        if frame.shape == (1, 1):
            console.print(Text(_cell(frame.row(0)[0])))
        else:
            _print_frame(frame, limit)
    else:
        console.print(Text(f"wrote {frame.height:,} rows to {output}"), soft_wrap=True)


@features_app.command("dataset")
def dataset(
    feature: Annotated[
        list[str], typer.Option("--feature", "-f", help="group.feature or group.* (ordered).")
    ],
    entities: Annotated[Path | None, typer.Option(help="Entity rows (.csv/.parquet): ids and times.")] = None,
    entity_time: Annotated[str | None, typer.Option(help="Column of each entity row's time.")] = None,
    at: Annotated[str | None, typer.Option(help="One instant for every row (default: now).")] = None,
    label: Annotated[str | None, typer.Option(help="group.feature used as the label (last column).")] = None,
    as_of: Annotated[str | None, typer.Option(help="Time travel: only rows written at or before.")] = None,
    start: Annotated[str | None, typer.Option(help="Event-time range start.")] = None,
    end: Annotated[str | None, typer.Option(help="Event-time range end.")] = None,
    include_deleted: Annotated[bool, typer.Option(help="Ignore tombstones.")] = False,
    include_duplicates: Annotated[bool, typer.Option(help="Keep duplicates (mode all).")] = False,
    recent_records: Annotated[int | None, typer.Option(help="Most recent rows per id (mode all).")] = None,
    mode: Annotated[str, typer.Option(help="asof (one row per entity row) or all.")] = "asof",
    ttl: Annotated[bool, typer.Option("--ttl/--no-ttl", help="Null out values older than the TTL.")] = True,
    full_feature_names: Annotated[bool, typer.Option(help="Name columns group__feature.")] = False,
    name: Annotated[str, typer.Option(help="Dataset name (lineage and manifest).")] = "dataset",
    output: Annotated[
        Path | None, typer.Option(help="Also write the .parquet file here (its folder must exist).")
    ] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Build a point-in-time dataset, stored as a Parquet artifact with a manifest."""
    if mode not in ("asof", "all"):
        raise ValidationError(f"unknown mode {mode!r}", obj="dataset", field="mode", fix="use asof or all")
    if label is not None and "." not in label:
        raise ValidationError(
            f"{label!r} names no feature group",
            obj="dataset",
            field="--label",
            fix=f"write the label as group.feature, e.g. claims.{label}",
        )
    with _store(workspace) as fs:
        result = fs.dataset(
            feature,
            entities=entities,
            entity_time=entity_time,
            at=at,
            label=label,
            as_of=as_of,
            event_time_range=(start, end) if start or end else None,
            include_deleted=include_deleted,
            include_duplicates=include_duplicates,
            recent_records=recent_records,
            mode="asof" if mode == "asof" else "all",
            apply_ttl=ttl,
            full_feature_names=full_feature_names,
            name=name,
            output=output,
        )
    if json:
        emit_json(result.manifest)
    else:
        _say(
            "dataset ",
            name,
            f": {result.rows:,} rows x {len(result.manifest['columns'])} columns, "
            f"sha256 {result.artifact.sha256}" + (f", written to {result.path}" if result.path else ""),
        )


@features_app.command("compact")
def compact(group: GroupArg, workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Merge each offline partition's files into one (verified: query results do not change)."""
    with _store(workspace) as fs:
        report = fs.compact(group)
    data = {
        "group": report.group,
        "files_before": report.files_before,
        "files_after": report.files_after,
        "partitions_rewritten": report.partitions_rewritten,
        "rows_rewritten": report.rows_rewritten,
        "orphans_removed": report.orphans_removed,
    }
    if json:
        emit_json(data)
    else:
        _say(
            "compacted ",
            group,
            f": {report.files_before} -> {report.files_after} files ({report.rows_rewritten:,} rows "
            f"rewritten, {report.orphans_removed} orphan files removed)",
        )


app.add_typer(features_app, name="features")
