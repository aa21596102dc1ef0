"""Service-backed steps: wrangle, ingest, dataset, train, tune, evaluate, clarify, register, approve, deploy.

Each kind is bound to a method of a workspace service by *name* (`"registry.register"` calls
`ws.registry.register(**arguments)`), or to a module function (`"pkg.mod:fn"`, given `ws=` if it takes
one). Nothing of those services is imported when this module is: a binding is looked up when the step
runs, in whichever process runs it. The lead binds or re-binds kinds with `bind_service` as the services
land; a step can also name its own target with `service_step(..., target="…")`.

A service's return value is persisted like any step output: frames as Parquet, dataclasses and pydantic
models as JSON (`result="module:function"` may first pick what to keep).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tideml.errors import NotFound, ValidationError
from tideml.pipelines.graph import StepHandle, StepNode, TargetRef
from tideml.pipelines.hashing import code_version, sha256_hex
from tideml.pipelines.policies import CachePolicy, RetryPolicy, validated
from tideml.pipelines.step import add_node
from tideml.registry.policy import check_policy

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = [
    "DEFAULT_BINDINGS",
    "SERVICE_KINDS",
    "StepOptions",
    "approve_if_policy_passes",
    "approve_step",
    "bind_service",
    "binding_for",
    "call_service",
    "clarify_step",
    "dataset_step",
    "deploy_step",
    "evaluate_step",
    "ingest_step",
    "register_step",
    "resolve_service",
    "service_code_version",
    "service_step",
    "train_step",
    "tune_step",
    "version_summary",
    "wrangle_step",
]


# Defaults the flagship pipeline is expected to use; re-bind with bind_service() as services settle.
DEFAULT_BINDINGS: dict[str, str] = {
    "wrangle": "wrangle.run",
    "ingest": "features.ingest",
    "dataset": "features.dataset",
    "train": "training.train",
    "tune": "training.tune",
    "evaluate": "training.evaluate",
    "clarify": "clarify.bias",
    "register": "registry.register",
    "approve": "tideml.pipelines.services:approve_if_policy_passes",
    "deploy": "serving.deploy",
}
SERVICE_KINDS = tuple(DEFAULT_BINDINGS)
_BINDINGS: dict[str, str] = dict(DEFAULT_BINDINGS)


def bind_service(kind: str, target: str) -> None:
    """Bind a step kind to `service.method` (on the workspace) or to `package.module:function`."""
    _check_target(target, where=f"binding of {kind}")
    _BINDINGS[kind] = target


def binding_for(kind: str) -> str:
    """The current target of a service step kind."""
    if kind not in _BINDINGS:
        raise ValidationError(
            f"unknown service step kind {kind!r}",
            obj="service step",
            field="kind",
            fix=f"use one of {', '.join(sorted(_BINDINGS))} or bind it with bind_service()",
        )
    return _BINDINGS[kind]


def _check_target(target: str, *, where: str) -> None:
    if ":" in target:
        module, _, func = target.partition(":")
        ok = bool(module) and bool(func) and all(p.isidentifier() for p in module.split("."))
    else:
        parts = target.split(".")
        ok = len(parts) == 2 and all(p.isidentifier() for p in parts)
    if not ok:
        raise ValidationError(
            f"{target!r} is not a service target",
            obj=where,
            field="target",
            fix="write 'service.method' (a workspace service) or 'package.module:function'",
        )


def resolve_service(ws: Workspace | None, target: str) -> Callable[..., Any]:
    """The callable a target names; workspace methods need the workspace."""
    if ":" in target:
        module, _, func = target.partition(":")
        try:
            fn = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise NotFound(
                f"cannot import {target} ({exc})",
                obj=f"service target {target}",
                fix="check the module and function name, or re-bind the step kind with bind_service()",
            ) from exc
        if ws is not None and "ws" in inspect.signature(fn).parameters:
            bound: Callable[..., Any] = lambda **kw: fn(ws=ws, **kw)  # noqa: E731
            bound.__wrapped__ = fn  # type: ignore[attr-defined]
            return bound
        return fn  # type: ignore[no-any-return]
    service, _, method = target.partition(".")
    if ws is None:
        raise ValidationError("a workspace service needs a workspace", obj=f"service target {target}")
    if not hasattr(type(ws), service) and not hasattr(ws, service):
        raise NotFound(
            f"the workspace has no service {service!r}",
            obj=f"service target {target}",
            fix="that part of tideml may not exist yet: bind the kind elsewhere with bind_service()",
        )
    svc = getattr(ws, service)
    fn = getattr(svc, method, None)
    if not callable(fn):
        raise NotFound(
            f"service {service!r} has no method {method!r}",
            obj=f"service target {target}",
            fix="re-bind the step kind with bind_service(kind, 'service.method')",
        )
    return fn  # type: ignore[no-any-return]


def service_code_version(ws: Workspace | None, target: str) -> str:
    """Code version of a service step: the normalised source of the callable its target names."""
    fn = resolve_service(ws, target)
    return sha256_hex(f"service:{target}:{code_version(getattr(fn, '__wrapped__', fn))}".encode())


def call_service(ws: Workspace, target: str, arguments: Mapping[str, Any], result: str | None = None) -> Any:
    """Run a service step: call the target with the decoded arguments; optionally reshape the result."""
    value = resolve_service(ws, target)(**dict(arguments))
    if result is not None:
        value = resolve_service(ws, result)(value)
    return value


_CALL = TargetRef(__name__, "call_service")


@dataclass(frozen=True)
class StepOptions:
    """Options of a service step, kept apart from the service's own arguments (which may be named alike).

    `target` overrides the kind's binding; `result` ("module:function" or a module-level function) maps
    the service's return value to what is persisted; `version` replaces the service's source in the
    code version; `retry`, `cache` and `after` as for `@step`.
    """

    target: str | None = None
    result: str | Callable[..., Any] | None = None
    retry: RetryPolicy | Mapping[str, Any] | int | None = None
    cache: CachePolicy | Mapping[str, Any] | bool | str | None = None
    after: tuple[StepHandle, ...] = ()
    version: str | None = None


def service_step(
    kind: str,
    name: str,
    arguments: Mapping[str, Any] | None = None,
    options: StepOptions | None = None,
) -> StepHandle:
    """A step that calls the service bound to `kind` with `arguments` (step outputs among them are inputs)."""
    opts = options or StepOptions()
    chosen = opts.target or binding_for(kind)
    _check_target(chosen, where=f"step {name}")
    result_target: str | None
    if opts.result is None or isinstance(opts.result, str):
        result_target = opts.result
    else:
        from tideml.pipelines.step import target_of

        t = target_of(opts.result, what="result function")
        result_target = f"{t.module}:{t.qualname}"
    if result_target is not None:
        _check_target(result_target, where=f"step {name}")
    node = StepNode(
        name=name,
        kind=kind,
        target=_CALL,
        arguments=dict(arguments or {}),
        version=opts.version,
        retry=validated(RetryPolicy, opts.retry or {}, step=name, field="retry"),
        cache=validated(CachePolicy, {} if opts.cache is None else opts.cache, step=name, field="cache"),
        after=tuple(a.step for a in opts.after),
        service=chosen if result_target is None else f"{chosen}|{result_target}",
    )
    return add_node(node)


def wrangle_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """Fit/apply a wrangling flow (binding `wrangle`)."""
    return service_step("wrangle", name, arguments, step_options)


def ingest_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """Ingest a frame into a feature group (binding `ingest`)."""
    return service_step("ingest", name, arguments, step_options)


def dataset_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """Build a point-in-time dataset from the feature store (binding `dataset`)."""
    return service_step("dataset", name, arguments, step_options)


def train_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """Train a model (binding `train`)."""
    return service_step("train", name, arguments, step_options)


def tune_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """Tune hyperparameters (binding `tune`)."""
    return service_step("tune", name, arguments, step_options)


def evaluate_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """Evaluate a model on held-out data (binding `evaluate`)."""
    return service_step("evaluate", name, arguments, step_options)


def clarify_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """A bias / explainability check (binding `clarify`)."""
    return service_step("clarify", name, arguments, step_options)


def register_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """Register a model version with its evidence (binding `register`: ws.registry.register).

    Unless told otherwise, what is kept is the version's summary (ref, hash, status, metrics).
    """
    opts = step_options or StepOptions()
    if opts.result is None:
        opts = replace(opts, result="tideml.pipelines.services:version_summary")
    return service_step("register", name, arguments, opts)


def approve_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """Approve a registered version if its group's policy passes (binding `approve`)."""
    return service_step("approve", name, arguments, step_options)


def deploy_step(name: str, *, step_options: StepOptions | None = None, **arguments: Any) -> StepHandle:
    """Deploy an approved version to an endpoint (binding `deploy`)."""
    return service_step("deploy", name, arguments, step_options)


def version_summary(version: Any) -> dict[str, Any]:
    """What a register step keeps of a ModelVersion: its ref, hash, status and metrics."""
    return {
        "ref": version.ref,
        "group": version.group,
        "version": version.version,
        "model_sha256": version.model_sha256,
        "status": version.status,
        "metrics": dict(version.metrics),
    }


def approve_if_policy_passes(
    ws: Workspace, version: str | Mapping[str, Any], actor: str | None = None, reason: str = ""
) -> dict[str, Any]:
    """Approve `GROUP/N` when every rule of its group's policy passes; otherwise leave it pending.

    Returns whether it was approved, the version's status and each rule's result, so a condition step
    can gate deployment on `approved >= 1`.
    """
    ref = str(version["ref"]) if isinstance(version, Mapping) else str(version)
    registry = ws.registry
    current = registry.get_version(ref)
    group = registry.get_group(current.group)
    results = check_policy(list(group.policy), current.metrics)
    passed = all(r.passed for r in results)
    status = current.status
    if passed and status != "Approved":
        status = registry.approve(
            ref, actor=actor or "tide-pipeline", reason=reason or "policy passed in pipeline"
        ).status
    return {
        "ref": ref,
        "approved": 1 if status == "Approved" else 0,
        "policy_passed": passed,
        "status": status,
        "rules": [{"rule": r.rule.text, "passed": r.passed, "detail": r.detail} for r in results],
    }
