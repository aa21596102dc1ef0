"""Alembic environment: runs on the connection tideml hands over in `config.attributes`."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, text

from tideml.meta import Base  # the package import loads every part's tables

# Two processes opening the same PostgreSQL workspace at once must not both migrate it.
_PG_LOCK_KEY = 0x7469_6465  # "tide"


def _configure_and_run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":  # type: ignore[attr-defined]
            context.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})"))
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _configure_and_run(connection)
else:  # developer running the alembic CLI by hand
    engine = create_engine(os.environ.get("TIDE_METADATA_URL", "sqlite:///metadata.db"))
    with engine.connect() as conn:
        _configure_and_run(conn)
