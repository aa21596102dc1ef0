"""SQL over the offline store: DuckDB with every group as a view, run in a read-only sandbox.

Each group `g` is exposed as the view `g` (every offline row, system columns included: the append-only
log) and `g_latest` (the latest row per record id by event time, ties broken by the later
`api_invocation_time` then `write_time`, dropped if that row is a tombstone).

User SQL is sandboxed in three layers:

1. exactly one statement, and it must be a SELECT, or an EXPLAIN (ANALYZE) of one: no CREATE, INSERT,
   COPY, ATTACH, SET, INSTALL, LOAD or PRAGMA (EXPLAIN ANALYZE runs what it wraps, so that must be a
   SELECT too);
2. DuckDB's `enable_external_access = false` with no directory allowed but the connection's own
   private temp folder: no function can read or write any file, attach a database or load an extension.
   The views read the offline files through Arrow datasets registered on the connection, which DuckDB
   scans through Python, not its file system, so not even the offline store is open to the query (a
   `COPY … TO` a partition file would otherwise overwrite it);
3. `lock_configuration = true`, so the query cannot switch either setting back.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence

import duckdb
import polars as pl

from tideml.errors import Conflict, TideError, ValidationError
from tideml.features.offline import OfflineStore, arrow_schema
from tideml.features.spec import FeatureGroupSpec
from tideml.features.sql_text import group_relation_sql, latest_relation_sql, quote_ident, quote_literal

__all__ = ["SqlEngine", "group_relation_sql", "latest_relation_sql", "quote_ident", "quote_literal"]

_ALLOWED = {"SELECT"}  # an EXPLAIN is judged by the statement it wraps
_EXPLAIN_WORDS = {"EXPLAIN", "ANALYZE", "ANALYSE"}


def _changed(exc: BaseException) -> Conflict:
    return Conflict(
        f"the offline files changed while the query started or ran ({str(exc).splitlines()[0]})",
        obj="feature store query",
        field="sql",
        fix="run the query again (a compaction or a group deletion replaced the files it listed)",
    )


class SqlEngine:
    """A sandboxed DuckDB connection with a view per group and per group's latest records."""

    def __init__(
        self,
        offline: OfflineStore,
        specs: Sequence[FeatureGroupSpec],
        *,
        threads: int | None = None,
    ) -> None:
        import pyarrow.dataset as pads  # imports pandas (~0.25 s): only when a query runs

        self.offline = offline
        self.specs = list(specs)
        self.con = duckdb.connect(":memory:")
        # DuckDB allows its temp folder (default ./.tmp, where a query's spill goes); a private one
        # keeps anyone else's files out of the query's reach
        self._tmp = tempfile.mkdtemp(prefix="tide-sql-")
        try:
            self.con.execute(f"SET temp_directory = {quote_literal(self._tmp)}")
            if threads:
                self.con.execute(f"SET threads = {int(threads)}")
            for i, spec in enumerate(self.specs):
                schema = arrow_schema(spec)  # the current schema: columns a file predates read as null
                paths = offline.paths(spec.name)
                source = f"__tide_group{i}"
                self.con.register(
                    source, pads.dataset(paths, schema=schema) if paths else schema.empty_table()
                )
                view = quote_ident(spec.name)
                self.con.execute(f"CREATE VIEW {view} AS SELECT * FROM {source}")
                self.con.execute(
                    f"CREATE VIEW {quote_ident(spec.name + '_latest')} AS {latest_relation_sql(spec, view)}"
                )
            self.con.execute("SET autoinstall_known_extensions = false")
            self.con.execute("SET autoload_known_extensions = false")
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
        except FileNotFoundError as exc:  # compacted or deleted since the manifest was read
            self.close()
            raise _changed(exc) from exc
        except BaseException:  # no connection or folder left behind
            self.close()
            raise

    @property
    def views(self) -> list[str]:
        return [v for s in self.specs for v in (s.name, s.name + "_latest")]

    def _check(self, sql: str) -> None:
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise self._error(exc, sql) from exc
        if len(statements) != 1:
            raise ValidationError(
                f"expected one SQL statement, got {len(statements)}",
                obj="feature store query",
                field="sql",
                fix="run one SELECT at a time",
            )
        kind = statements[0].type.name
        if kind == "EXPLAIN":
            kind = self._explained(statements[0].query)
        if kind == "UNKNOWN":
            raise ValidationError(
                "EXPLAIN must wrap exactly one SELECT",
                obj="feature store query",
                field="sql",
                fix="write EXPLAIN [ANALYZE] SELECT …",
            )
        if kind == "MULTI":
            raise ValidationError(
                "this statement runs as several (a PIVOT without an IN list creates a type first)",
                obj="feature store query",
                field="sql",
                fix="list the values to pivot on: PIVOT t ON col IN ('a', 'b') USING sum(x)",
            )
        if kind not in _ALLOWED:
            raise ValidationError(
                f"{kind} statements are not allowed: feature store SQL is read-only",
                obj="feature store query",
                field="sql",
                fix="write a SELECT over the group views (ingest, update and delete go through the API)",
            )

    @staticmethod
    def _explained(sql: str) -> str:
        """The type of the statement an EXPLAIN wraps (parsed on its own, after EXPLAIN, ANALYZE and
        parenthesised options), or "UNKNOWN" when that does not parse as one statement."""
        every = duckdb.tokenize(sql)
        ends = [o for o, _ in every[1:]] + [len(sql)]  # a token ends where the next (or a comment) starts
        depth = 0
        for (offset, kind), end in zip(every, ends, strict=True):
            if kind == duckdb.token_type.comment:
                continue
            text = sql[offset:end].strip()
            if text == "(":
                depth += 1
            elif text == ")":
                depth -= 1
            elif depth == 0 and text.upper() not in _EXPLAIN_WORDS:
                try:
                    inner = duckdb.extract_statements(sql[offset:])
                except duckdb.Error:
                    break
                if len(inner) == 1 and inner[0].type.name != "EXPLAIN":
                    return inner[0].type.name
                break
        return "UNKNOWN"

    def _error(self, exc: Exception, sql: str) -> TideError:
        text = str(exc).splitlines()[0]
        if "registered as '__tide_group" in text:  # a file went away under the scan (compaction)
            return _changed(exc)
        if isinstance(exc, duckdb.PermissionException):
            return ValidationError(
                f"refused: the query tried to read or write outside the feature store ({text})",
                obj="feature store query",
                field="sql",
                fix="query only the group views; files, databases and extensions are off limits",
            )
        if isinstance(exc, duckdb.CatalogException) and "function with name" in text.lower():
            return ValidationError(
                text,
                obj="feature store query",
                field="sql",
                fix="use DuckDB's built-in functions; file, environment and extension functions are off",
            )
        if isinstance(exc, duckdb.CatalogException):
            views = ", ".join(self.views[:20]) or "(no groups yet)"
            return ValidationError(
                text, obj="feature store query", field="sql", fix=f"the views are: {views}"
            )
        if isinstance(exc, duckdb.ParserException):
            return ValidationError(text, obj="feature store query", field="sql", fix="correct the SQL syntax")
        if isinstance(exc, duckdb.InvalidInputException) and "lock" in text.lower():
            return ValidationError(
                f"refused: {text}",
                obj="feature store query",
                field="sql",
                fix="settings of the sandbox cannot be changed",
            )
        return ValidationError(text, obj="feature store query", field="sql", fix="correct the query")

    def query(self, sql: str) -> pl.DataFrame:
        """Run one read-only SELECT and return the result as a Polars frame."""
        self._check(sql)
        try:
            table = self.con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise self._error(exc, sql) from exc
        result = pl.from_arrow(table)
        assert isinstance(result, pl.DataFrame)
        return result

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> SqlEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
