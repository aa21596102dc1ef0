"""The metadata DB: SQLAlchemy models, Alembic migrations and the store that opens them.

Each part keeps its tables in `meta/<part>_tables.py` on the shared `Base`; importing this package loads
them all, so Alembic and the schema test see one metadata.
"""

from tideml.meta import (
    features_tables,
    monitor_tables,
    pipelines_tables,
    registry_tables,
    serving_tables,
    train_tables,
)
from tideml.meta.models import Base, Blob, Ref
from tideml.meta.store import MetadataStore

__all__ = [
    "Base",
    "Blob",
    "MetadataStore",
    "Ref",
    "features_tables",
    "monitor_tables",
    "pipelines_tables",
    "registry_tables",
    "serving_tables",
    "train_tables",
]
