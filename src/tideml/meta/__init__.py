"""The metadata DB: SQLAlchemy models, Alembic migrations and the store that opens them."""

from tideml.meta.models import Base, Blob, Ref
from tideml.meta.store import MetadataStore

__all__ = ["Base", "Blob", "MetadataStore", "Ref"]
