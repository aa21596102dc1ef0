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

import importlib
from typing import TYPE_CHECKING, Any

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

# name -> module: each loads on first use, so `tideml.features.service` (every `tide features`
# command) does not import DuckDB and numpy with the dataset and SQL modules until they are needed
_WHERE: dict[str, str] = {
    "BatchGetResult": "tideml.features.service",
    "CompactionReport": "tideml.features.offline",
    "DatasetResult": "tideml.features.service",
    "DatasetTable": "tideml.features.dataset",
    "DeleteReport": "tideml.features.service",
    "FeatureDefinition": "tideml.features.spec",
    "FeatureGroup": "tideml.features.service",
    "FeatureGroupSpec": "tideml.features.spec",
    "FeatureRef": "tideml.features.dataset",
    "FeatureStore": "tideml.features.service",
    "FeatureType": "tideml.features.spec",
    "IngestReport": "tideml.features.ingest",
    "OfflineStore": "tideml.features.offline",
    "OfflineStoreConfig": "tideml.features.spec",
    "OnlineStore": "tideml.features.online",
    "OnlineStoreConfig": "tideml.features.spec",
    "PreparedBatch": "tideml.features.ingest",
    "SqlEngine": "tideml.features.sql",
    "TtlDuration": "tideml.features.spec",
    "build_dataset": "tideml.features.dataset",
    "infer_feature_definitions": "tideml.features.spec",
    "ingest_frame": "tideml.features.ingest",
    "open_online_store": "tideml.features.online",
    "prepare_batch": "tideml.features.ingest",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
