"""Pipelines: a DAG of steps with typed parameters, content-hashed caching, retries, resume and history.

Layered like Hamilton: `step`/`graph` (nodes and the DAG, plain data), `hashing`/`cache` (keys from code
version + parameters + input content hashes; metadata apart from results), `worker`/`executors`
(running one step anywhere: driver, process pool, Dask), `driver` (the scheduling loop), `runner`
(run / resume entry points), `history` (run records) and `service` (the workspace-bound API the CLI
uses).
"""

from tideml.pipelines.cache import CacheHit, StepCache
from tideml.pipelines.codecs import OutputArtifact
from tideml.pipelines.control import ConditionHandle, PipelineFailed, condition, evaluate_condition, fail
from tideml.pipelines.definition import Pipeline, pipeline
from tideml.pipelines.executors import make_executor
from tideml.pipelines.graph import OutputRef, PipelineGraph, StepHandle, StepNode
from tideml.pipelines.hashing import (
    cache_key,
    cache_key_material,
    canonical_json,
    code_version,
    explain_cache_key,
)
from tideml.pipelines.history import RunHistory, RunView, StepRunView
from tideml.pipelines.params import ParamRef
from tideml.pipelines.policies import CachePolicy, RetryPolicy
from tideml.pipelines.runner import RunResult, StepResult, resume_run, run_pipeline
from tideml.pipelines.service import PipelineService, load_pipeline
from tideml.pipelines.services import (
    StepOptions,
    approve_if_policy_passes,
    approve_step,
    bind_service,
    clarify_step,
    dataset_step,
    deploy_step,
    evaluate_step,
    ingest_step,
    register_step,
    service_step,
    train_step,
    tune_step,
    wrangle_step,
)
from tideml.pipelines.step import StepDef, step

__all__ = [
    "CacheHit",
    "CachePolicy",
    "ConditionHandle",
    "OutputArtifact",
    "OutputRef",
    "ParamRef",
    "Pipeline",
    "PipelineFailed",
    "PipelineGraph",
    "PipelineService",
    "RetryPolicy",
    "RunHistory",
    "RunResult",
    "RunView",
    "StepCache",
    "StepDef",
    "StepHandle",
    "StepNode",
    "StepOptions",
    "StepResult",
    "StepRunView",
    "approve_if_policy_passes",
    "approve_step",
    "bind_service",
    "cache_key",
    "cache_key_material",
    "canonical_json",
    "clarify_step",
    "code_version",
    "condition",
    "dataset_step",
    "deploy_step",
    "evaluate_condition",
    "evaluate_step",
    "explain_cache_key",
    "fail",
    "ingest_step",
    "load_pipeline",
    "make_executor",
    "pipeline",
    "register_step",
    "resume_run",
    "run_pipeline",
    "service_step",
    "step",
    "train_step",
    "tune_step",
    "wrangle_step",
]
