"""Data wrangling: declarative flows, fitted once, applied identically to batches and to single records.

    from tideml.wrangle import Flow
    fitted = Flow.load("claims.flow.json").fit("claims.csv")
    batch = fitted.transform("claims.csv")                  # Polars, lazy / streaming
    row = fitted.transform_record({"policy_id": 1, …})      # plain Python, same output row

`FittedFlow.save` / `FittedFlow.load` persist it as portable JSON; `export_script` writes a standalone
Polars script; `analyze` profiles a table; `WrangleService` (via the workspace) runs processing jobs
with lineage.
"""

from tideml.wrangle.analyses import AnalysisReport, analyze
from tideml.wrangle.engine import FittedFlow, fit_flow
from tideml.wrangle.export import export_script
from tideml.wrangle.service import FeatureGroupReader, WrangleRun, WrangleService
from tideml.wrangle.spec import CsvSource, FeatureGroupSource, Flow, ParquetSource
from tideml.wrangle.transforms import OPERATORS
from tideml.wrangle.types import DTYPES, DType, Schema

__all__ = [
    "DTYPES",
    "OPERATORS",
    "AnalysisReport",
    "CsvSource",
    "DType",
    "FeatureGroupReader",
    "FeatureGroupSource",
    "FittedFlow",
    "Flow",
    "ParquetSource",
    "Schema",
    "WrangleRun",
    "WrangleService",
    "analyze",
    "export_script",
    "fit_flow",
]
