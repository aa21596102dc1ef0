"""The metadata store: an SQLAlchemy engine on SQLite or PostgreSQL, migrated to head on open."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from tideml.artifacts import ArtifactRef
from tideml.errors import ConfigError, Conflict, NotFound, StoreUnavailable
from tideml.meta.models import Blob, Ref

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MetadataStore"]

_MIGRATIONS = Path(__file__).parent / "migrations"
# The migration heads in the package (one per independent branch of parts' migrations). Opening a
# store at head compares the database's revisions with these and never imports Alembic (~0.1 s of
# every `tide` command); tests/meta checks them against Alembic's own reading of the migrations.
HEADS = frozenset(
    {"0003_features", "0003_monitor", "0003_pipelines", "0003_registry", "0003_serving", "0003_train"}
)
# Alembic's `context` is process-global; threads of one process migrate one at a time. Other processes
# are kept apart by a PostgreSQL advisory lock (migrations/env.py) or SQLite's write lock.
_MIGRATION_LOCK = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")  # a second writer waits instead of failing at once
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"{url!r} is not a database URL",
            obj="metadata",
            field="url",
            fix="use sqlite:///path/metadata.db or postgresql+psycopg://user@host:5432/db",
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"backend {backend!r} is not supported",
            obj="metadata",
            field="url",
            fix="use sqlite:///… or postgresql+psycopg://…",
        )
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    try:
        if backend == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except NoSuchModuleError as exc:
        raise ConfigError(str(exc), obj="metadata", field="url", fix="use the psycopg driver") from exc
    return engine


def _alembic_config(connection: sa.Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


class MetadataStore:
    """Owns the engine; `session()` is the one way to read and write metadata."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.migrate()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        safe = make_url(self.url).render_as_string(hide_password=True)
        return StoreUnavailable(
            f"cannot reach the metadata DB at {safe} ({str(exc).splitlines()[0]})",
            obj="metadata",
            field="url",
            fix="start the database or correct [metadata] url in tide.toml / TIDE_METADATA_URL",
        )

    def migrate(self) -> None:
        """Apply every pending Alembic migration (a no-op when the schema is at head)."""
        try:
            with _MIGRATION_LOCK, self.engine.begin() as conn:
                if self.current_revisions(conn) != HEADS:
                    from alembic import command

                    command.upgrade(_alembic_config(conn), "heads")
        except OperationalError as exc:
            raise self._unavailable(exc) from exc

    def head_revisions(self) -> set[str]:
        """The migration heads in the package, as Alembic reads them from the migration scripts."""
        from alembic.script import ScriptDirectory

        return set(ScriptDirectory(str(_MIGRATIONS)).get_heads())

    def current_revisions(self, conn: sa.Connection | None = None) -> set[str]:
        """The revisions the database is at (Alembic's `alembic_version` table; none before the first
        migration)."""
        if conn is None:
            with self.engine.connect() as own:
                return self.current_revisions(own)
        if not sa.inspect(conn).has_table("alembic_version"):
            return set()
        return {row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises.

        Constraint violations and stale versions become `Conflict`; an unreachable DB becomes
        `StoreUnavailable`.
        """
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SAIntegrityError as exc:
            session.rollback()
            raise Conflict(
                f"write refused by a constraint ({str(exc.orig).splitlines()[0]})",
                obj="metadata",
                fix="the object exists already or references a missing one; re-read and retry",
            ) from exc
        except StaleDataError as exc:
            session.rollback()
            raise Conflict(
                "the row changed since it was read",
                obj="metadata",
                fix="another writer updated it concurrently; re-read and retry",
            ) from exc
        except OperationalError as exc:
            session.rollback()
            raise self._unavailable(exc) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()

    # -- artifact index ----------------------------------------------------------------------------
    def record_blob(self, ref: ArtifactRef) -> None:
        """Index an artifact-store object (idempotent)."""
        with self.session() as s:
            if s.get(Blob, ref.sha256) is None:
                s.add(Blob(sha256=ref.sha256, size=ref.size, media_type=ref.media_type))

    def list_blobs(self) -> list[ArtifactRef]:
        with self.session() as s:
            rows = s.scalars(select(Blob).order_by(Blob.created_at, Blob.sha256)).all()
            return [ArtifactRef(b.sha256, b.size, b.media_type) for b in rows]

    # -- named refs (optimistic concurrency) -------------------------------------------------------
    def get_ref(self, namespace: str, name: str) -> Ref:
        with self.session() as s:
            ref = s.scalars(select(Ref).where(Ref.namespace == namespace, Ref.name == name)).first()
            if ref is None:
                raise NotFound("no such ref", obj=f"ref {namespace}/{name}", fix="set it first")
            return ref

    def set_ref(self, namespace: str, name: str, target: str, *, expected_version: int | None = None) -> Ref:
        """Point `namespace/name` at `target`.

        With `expected_version`, the write succeeds only if the ref is still at that version (0 means
        "must not exist yet"); otherwise it raises `Conflict`. Concurrent writers that both read the same
        version cannot both win.
        """
        with self.session() as s:
            ref = s.scalars(select(Ref).where(Ref.namespace == namespace, Ref.name == name)).first()
            current = 0 if ref is None else ref.version
            if expected_version is not None and expected_version != current:
                raise Conflict(
                    f"expected version {expected_version}, found {current}",
                    obj=f"ref {namespace}/{name}",
                    field="version",
                    fix="re-read the ref and retry",
                )
            if ref is None:
                ref = Ref(namespace=namespace, name=name, target=target)
                s.add(ref)
            else:
                ref.target = target
            s.flush()
            return ref
