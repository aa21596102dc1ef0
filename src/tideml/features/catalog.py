"""The feature group catalog in the metadata DB: create, read, update, delete, list and search groups."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from tideml.errors import Conflict, NotFound, ValidationError
from tideml.features.spec import FeatureGroupSpec
from tideml.meta.features_tables import (
    FeatureDefinitionRow,
    FeatureGroupRow,
    FeatureGroupTagRow,
)
from tideml.meta.store import MetadataStore

__all__ = ["GroupCatalog", "GroupRecord", "iso_utc"]


@dataclass(frozen=True)
class GroupRecord:
    """A group as stored: its spec plus identity, versions and freshness."""

    spec: FeatureGroupSpec
    uid: str
    schema_version: int
    status: str
    created_at: datetime
    updated_at: datetime
    rows_ingested: int
    last_event_time: datetime | None
    last_write_time: datetime | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def artifact_uri(self) -> str:
        """The lineage URI of this version of the group."""
        return f"featuregroup:{self.spec.name}@{self.uid}/v{self.schema_version}"

    def summary(self) -> dict[str, Any]:
        s = self.spec
        return {
            "name": s.name,
            "description": s.description,
            "record_identifier": s.record_identifier,
            "event_time": s.event_time,
            "features": len(s.features),
            "online": s.online.enabled,
            "offline": s.offline.enabled,
            "ttl": str(s.online.ttl) if s.online.ttl else None,
            "tags": dict(s.tags),
            "schema_version": self.schema_version,
            "rows_ingested": self.rows_ingested,
            "created_at": iso_utc(self.created_at),
            "last_event_time": iso_utc(self.last_event_time),
        }


def iso_utc(value: datetime | None) -> str | None:
    """ISO-8601 in UTC; SQLite hands back naive datetimes, which were stored as UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _record(row: FeatureGroupRow) -> GroupRecord:
    return GroupRecord(
        spec=FeatureGroupSpec.from_dict(row.spec),
        uid=row.uid,
        schema_version=row.schema_version,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        rows_ingested=row.rows_ingested,
        last_event_time=row.last_event_time,
        last_write_time=row.last_write_time,
    )


def _fill(row: FeatureGroupRow, spec: FeatureGroupSpec) -> None:
    row.spec = spec.to_dict()
    row.description = spec.description
    row.record_identifier = spec.record_identifier
    row.event_time_feature = spec.event_time
    row.online_enabled = spec.online.enabled
    row.offline_enabled = spec.offline.enabled
    row.ttl_seconds = spec.ttl_seconds
    existing = {d.name: d for d in row.definitions}
    row.definitions = []
    for pos, f in enumerate(spec.features):
        d = existing.get(f.name) or FeatureDefinitionRow(name=f.name)
        d.position, d.type, d.nullable = pos, f.type.value, f.nullable
        d.description, d.parameters = f.description, dict(f.parameters)
        row.definitions.append(d)
    tags = {t.key: t for t in row.tags}
    row.tags = []
    for key, value in spec.tags.items():
        t = tags.get(key) or FeatureGroupTagRow(key=key)
        t.value = value
        row.tags.append(t)


class GroupCatalog:
    """Feature group metadata over the workspace's metadata store."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def _row(self, s: Session, name: str) -> FeatureGroupRow:
        row = s.scalars(
            sa.select(FeatureGroupRow)
            .where(FeatureGroupRow.name == name)
            .options(selectinload(FeatureGroupRow.definitions), selectinload(FeatureGroupRow.tags))
        ).first()
        if row is None:
            raise NotFound(
                "no such feature group",
                obj=f"feature group {name}",
                fix="list groups with `tide features list`, or create it (ingest creates it from data)",
            )
        return row

    def create(self, spec: FeatureGroupSpec) -> GroupRecord:
        with self.metadata.session() as s:
            clash = s.scalars(
                sa.select(FeatureGroupRow.name).where(FeatureGroupRow.name_key == spec.name.lower())
            ).first()
            if clash is not None:
                raise Conflict(
                    "a feature group with this name exists already"
                    + (f" (as {clash!r}; names are case-insensitive)" if clash != spec.name else ""),
                    obj=f"feature group {spec.name}",
                    fix="choose another name, update the existing group, or delete it first",
                )
            uid = f"{int(time.time())}-{secrets.token_hex(4)}"
            row = FeatureGroupRow(name=spec.name, name_key=spec.name.lower(), uid=uid, schema_version=1)
            row.definitions, row.tags = [], []
            _fill(row, spec)
            s.add(row)
            s.flush()
            return _record(row)

    def get(self, name: str) -> GroupRecord:
        with self.metadata.session() as s:
            return _record(self._row(s, name))

    def exists(self, name: str) -> bool:
        with self.metadata.session() as s:
            return (
                s.scalars(sa.select(FeatureGroupRow.id).where(FeatureGroupRow.name == name)).first()
                is not None
            )

    def replace(self, name: str, spec: FeatureGroupSpec, *, bump_schema: bool) -> GroupRecord:
        """Store a changed spec (optimistic concurrency: a concurrent update raises Conflict)."""
        with self.metadata.session() as s:
            row = self._row(s, name)
            _fill(row, spec)
            if bump_schema:
                row.schema_version += 1
            s.flush()
            return _record(row)

    def delete(self, name: str) -> GroupRecord:
        with self.metadata.session() as s:
            row = self._row(s, name)
            record = _record(row)
            s.delete(row)
            return record

    def list_all(self) -> list[GroupRecord]:
        with self.metadata.session() as s:
            rows = s.scalars(sa.select(FeatureGroupRow).order_by(FeatureGroupRow.name)).all()
            return [_record(r) for r in rows]

    def search(
        self,
        text: str | None = None,
        *,
        tags: Sequence[str] = (),
        feature: str | None = None,
    ) -> list[GroupRecord]:
        """Groups whose name or description contains `text`, having every tag (`key` or `key=value`)
        and a feature whose name contains `feature` (all case-insensitive)."""
        q = sa.select(FeatureGroupRow).order_by(FeatureGroupRow.name)
        if text:
            pattern = f"%{text.lower()}%"
            q = q.where(
                sa.or_(
                    sa.func.lower(FeatureGroupRow.name).like(pattern),
                    sa.func.lower(FeatureGroupRow.description).like(pattern),
                )
            )
        for tag in tags:
            key, _, value = tag.partition("=")
            if not key.strip():
                raise ValidationError(
                    f"tag filter {tag!r} has no key",
                    obj="feature group search",
                    field="tags",
                    fix="write key or key=value, e.g. team=fraud",
                )
            cond = [FeatureGroupTagRow.group_id == FeatureGroupRow.id, FeatureGroupTagRow.key == key]
            if value:
                cond.append(FeatureGroupTagRow.value == value)
            q = q.where(sa.exists().where(*cond))
        if feature:
            q = q.where(
                sa.exists().where(
                    FeatureDefinitionRow.group_id == FeatureGroupRow.id,
                    sa.func.lower(FeatureDefinitionRow.name).like(f"%{feature.lower()}%"),
                )
            )
        with self.metadata.session() as s:
            return [_record(r) for r in s.scalars(q).all()]

    def record_ingest(self, name: str, rows: int, last_event: datetime | None, write_time: datetime) -> None:
        """Add to the freshness statistics (a plain UPDATE: concurrent ingests never conflict)."""
        table = cast(sa.Table, FeatureGroupRow.__table__)
        values: dict[str, Any] = {
            "rows_ingested": table.c.rows_ingested + rows,
            "last_write_time": write_time,
        }
        if last_event is not None:
            values["last_event_time"] = sa.case(
                (table.c.last_event_time.is_(None), last_event),
                (table.c.last_event_time < last_event, last_event),
                else_=table.c.last_event_time,
            )
        with self.metadata.session() as s:
            s.execute(sa.update(table).where(table.c.name == name).values(**values))
