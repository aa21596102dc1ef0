"""The feature store: feature groups, an append-only offline store, online stores, SQL and datasets.

`FeatureStore(ws)` (wired as `ws.features`) is the service; the modules below it are the functional
core and work without a workspace:

* `spec`: `FeatureGroupSpec`, `FeatureDefinition`, `FeatureType`, store configs, schema inference;
* `offline`: `OfflineStore`, the partitioned Parquet log with a manifest and verified compaction;
* `online`: `OnlineStore` and its SQLite, Redis and in-memory backends;
* `ingest`: batch validation and parallel writes; `sql`: the sandboxed DuckDB engine;
* `dataset`: point-in-time datasets compiled to DuckDB ASOF joins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideml._lazy import lazy_attributes

if TYPE_CHECKING:
    from tideml.features.dataset import DatasetTable, FeatureRef, build_dataset
    from tideml.features.ingest import IngestReport, PreparedBatch, ingest_frame, prepare_batch
    from tideml.features.offline import CompactionReport, OfflineStore
    from tideml.features.online import OnlineStore, open_online_store
    from tideml.features.service import (
        BatchGetResult,
        DatasetResult,
        DeleteReport,
        FeatureGroup,
        FeatureStore,
    )
    from tideml.features.spec import (
        FeatureDefinition,
        FeatureGroupSpec,
        FeatureType,
        OfflineStoreConfig,
        OnlineStoreConfig,
        TtlDuration,
        infer_feature_definitions,
    )
    from tideml.features.sql import SqlEngine

__all__ = [
    "BatchGetResult",
    "CompactionReport",
    "DatasetResult",
    "DatasetTable",
    "DeleteReport",
    "FeatureDefinition",
    "FeatureGroup",
    "FeatureGroupSpec",
    "FeatureRef",
    "FeatureStore",
    "FeatureType",
    "IngestReport",
    "OfflineStore",
    "OfflineStoreConfig",
    "OnlineStore",
    "OnlineStoreConfig",
    "PreparedBatch",
    "SqlEngine",
    "TtlDuration",
    "build_dataset",
    "infer_feature_definitions",
    "ingest_frame",
    "open_online_store",
    "prepare_batch",
]

# name -> submodule: each loads on first use, so `tideml.features.service` (every `tide features`
# command) does not import DuckDB and numpy with the dataset and SQL modules until they are needed
_WHERE: dict[str, str] = {
    "BatchGetResult": "service",
    "CompactionReport": "offline",
    "DatasetResult": "service",
    "DatasetTable": "dataset",
    "DeleteReport": "service",
    "FeatureDefinition": "spec",
    "FeatureGroup": "service",
    "FeatureGroupSpec": "spec",
    "FeatureRef": "dataset",
    "FeatureStore": "service",
    "FeatureType": "spec",
    "IngestReport": "ingest",
    "OfflineStore": "offline",
    "OfflineStoreConfig": "spec",
    "OnlineStore": "online",
    "OnlineStoreConfig": "spec",
    "PreparedBatch": "ingest",
    "SqlEngine": "sql",
    "TtlDuration": "spec",
    "build_dataset": "dataset",
    "infer_feature_definitions": "spec",
    "ingest_frame": "ingest",
    "open_online_store": "online",
    "prepare_batch": "ingest",
}

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
