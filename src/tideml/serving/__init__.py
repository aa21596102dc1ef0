"""Real-time serving: endpoints with online-feature lookup, explanations, variants and data capture.

    from tideml.serving import Endpoints, serve
    Endpoints(ws).deploy("fraud", model="autoclaims-fraud@production")   # only Approved versions
    serve(ws, "fraud", workers=2, port=8080)                              # POST /invocations, GET /ping

`batch_transform` scores Parquet files with the same compiled trees; `EndpointClient` calls an endpoint.
The request path is `InferenceEngine` (no HTTP), fed by a `FeatureLookup` (the online store) and a
`RecordTransformer` (the fitted claims flow); `create_app` wraps it in FastAPI.

Heavy modules (FastAPI, the feature store, xgboost) load only when the name that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideml._lazy import lazy_attributes
from tideml.serving.treeeval import CompiledTrees

if TYPE_CHECKING:
    from tideml.serving.app import create_app
    from tideml.serving.auth import KeyGate, TokenBucket, hash_api_key, new_api_key
    from tideml.serving.batch import BatchTransformReport, batch_transform, score_parquet
    from tideml.serving.capture import CaptureWriter
    from tideml.serving.client import EndpointClient, EndpointError
    from tideml.serving.engine import InferenceEngine, Invocation, Variant
    from tideml.serving.model import ServingModel, load_serving_model
    from tideml.serving.runtime import EndpointRuntime
    from tideml.serving.server import serve
    from tideml.serving.service import ApiKeyInfo, EndpointInfo, Endpoints
    from tideml.serving.sources import (
        FeatureLookup,
        FeaturePlan,
        FlowTransformer,
        GroupInfo,
        OnlineStoreLookup,
        RecordTransformer,
        plan_features,
    )
    from tideml.serving.spec import CaptureConfig, EndpointConfig, LimitsConfig, VariantConfig

__all__ = [
    "ApiKeyInfo",
    "BatchTransformReport",
    "CaptureConfig",
    "CaptureWriter",
    "CompiledTrees",
    "EndpointClient",
    "EndpointConfig",
    "EndpointError",
    "EndpointInfo",
    "EndpointRuntime",
    "Endpoints",
    "FeatureLookup",
    "FeaturePlan",
    "FlowTransformer",
    "GroupInfo",
    "InferenceEngine",
    "Invocation",
    "KeyGate",
    "LimitsConfig",
    "OnlineStoreLookup",
    "RecordTransformer",
    "ServingModel",
    "TokenBucket",
    "Variant",
    "VariantConfig",
    "batch_transform",
    "create_app",
    "hash_api_key",
    "load_serving_model",
    "new_api_key",
    "plan_features",
    "score_parquet",
    "serve",
]

_WHERE = {
    "create_app": "app",
    "KeyGate": "auth",
    "TokenBucket": "auth",
    "hash_api_key": "auth",
    "new_api_key": "auth",
    "BatchTransformReport": "batch",
    "batch_transform": "batch",
    "score_parquet": "batch",
    "CaptureWriter": "capture",
    "EndpointClient": "client",
    "EndpointError": "client",
    "InferenceEngine": "engine",
    "Invocation": "engine",
    "Variant": "engine",
    "ServingModel": "model",
    "load_serving_model": "model",
    "EndpointRuntime": "runtime",
    "serve": "server",
    "ApiKeyInfo": "service",
    "EndpointInfo": "service",
    "Endpoints": "service",
    "FeatureLookup": "sources",
    "FeaturePlan": "sources",
    "FlowTransformer": "sources",
    "GroupInfo": "sources",
    "OnlineStoreLookup": "sources",
    "RecordTransformer": "sources",
    "plan_features": "sources",
    "CaptureConfig": "spec",
    "EndpointConfig": "spec",
    "LimitsConfig": "spec",
    "VariantConfig": "spec",
}


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
