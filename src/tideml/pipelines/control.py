"""Control steps: `condition` chooses a branch from metrics; `fail` stops the run with a message.

A condition's expression uses the registry's rule grammar (`test_auc >= 0.75`, `abs(dppl) <= 0.1`)
joined by `and` / `or` (`and` binds tighter). Metrics come from step outputs (JSON dicts, nested dicts
flattened with dots: `{"post": {"dppl": …}}` gives `post.dppl`). Steps defined inside
`with gate.if_true():` run only when it passed, inside `with gate.if_false():` only when it did not;
the others are recorded as Skipped, and so is everything downstream of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tideml.errors import TideError, ValidationError
from tideml.pipelines.graph import OutputRef, StepHandle, StepNode, TargetRef, current_builder
from tideml.pipelines.hashing import code_version
from tideml.pipelines.policies import CachePolicy
from tideml.pipelines.step import add_node
from tideml.registry.policy import check_policy, parse_rule

__all__ = [
    "ConditionHandle",
    "PipelineFailed",
    "condition",
    "evaluate_condition",
    "fail",
    "flatten_metrics",
    "raise_failure",
]

_SPLIT_OR = re.compile(r"\s+or\s+")
_SPLIT_AND = re.compile(r"\s+and\s+")


class PipelineFailed(TideError):
    """A Fail step stopped the run, or a step failed after its retries."""

    exit_code = 8


class ConditionHandle(StepHandle):
    """The handle of a condition step: its output, plus the two branch contexts."""

    @contextmanager
    def if_true(self) -> Iterator[None]:
        """Steps defined in this block run only when the condition passed."""
        with _branch(self.step, True):
            yield

    @contextmanager
    def if_false(self) -> Iterator[None]:
        """Steps defined in this block run only when the condition did not pass."""
        with _branch(self.step, False):
            yield


@contextmanager
def _branch(step: str, when: bool) -> Iterator[None]:
    builder = current_builder()
    if builder is None:
        raise ValidationError(
            "branches exist only inside a pipeline definition",
            obj=f"condition {step}",
            fix="use `with gate.if_true():` inside the @pipeline function",
        )
    builder.guards.append((step, when))
    try:
        yield
    finally:
        builder.guards.pop()


def flatten_metrics(value: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts, keyed by dotted path (booleans count as 0/1)."""
    out: dict[str, float] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.update(flatten_metrics(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, bool | int | float) and prefix:
        out[prefix] = float(value)
    return out


def _parse_expression(expression: str) -> list[list[str]]:
    """`a and b or c` → [[a, b], [c]] (a disjunction of conjunctions), every rule validated."""
    groups = [[r.strip() for r in _SPLIT_AND.split(part)] for part in _SPLIT_OR.split(expression.strip())]
    for group in groups:
        for rule in group:
            parse_rule(rule)
    return groups


def evaluate_condition(expression: str, metrics: Any = None) -> dict[str, Any]:
    """Evaluate an expression over metrics; the result is the condition step's (JSON) output."""
    merged: dict[str, float] = {}
    for item in metrics if isinstance(metrics, list) else [metrics]:
        merged.update(flatten_metrics(item))
    groups = _parse_expression(expression)
    results: list[dict[str, Any]] = []
    passed_any = False
    for group in groups:
        checked = check_policy(group, merged)
        results.extend(
            {"rule": r.rule.text, "observed": r.observed, "passed": r.passed, "detail": r.detail}
            for r in checked
        )
        passed_any = passed_any or all(r.passed for r in checked)
    failed = [f"{r['rule']} ({r['detail']})" for r in results if not r["passed"]]
    return {
        "expression": expression,
        "passed": passed_any,
        "rules": results,
        "summary": "passed" if passed_any else "failed: " + "; ".join(str(f) for f in failed),
    }


def raise_failure(message: str, details: Any = None) -> None:
    """The body of a Fail step: always raises PipelineFailed with the message (and details)."""
    text = message
    if isinstance(details, Mapping) and "summary" in details:
        text = f"{message} ({details['summary']})"
    elif details is not None:
        text = f"{message} ({details})"
    raise PipelineFailed(text, obj="pipeline", fix="see the failing condition; change the inputs or the bar")


_CONDITION = TargetRef(__name__, "evaluate_condition")
_FAIL = TargetRef(__name__, "raise_failure")


def condition(
    name: str,
    expression: str,
    *,
    metrics: OutputRef | list[OutputRef] | Mapping[str, Any],
    after: tuple[StepHandle, ...] = (),
) -> ConditionHandle:
    """A condition step: evaluates `expression` over `metrics` and gates the steps in its branches.

    Parameters inside the expression (`f"test_auc >= {min_auc}"`) are substituted at run time.
    """
    if "${" not in expression:
        _parse_expression(expression)  # fail at definition time when we can
    node = StepNode(
        name=name,
        kind="condition",
        target=_CONDITION,
        arguments={"expression": expression, "metrics": metrics},
        code_version=code_version(evaluate_condition),
        after=tuple(a.step for a in after),
        in_driver=True,
        templates=True,
    )
    handle = add_node(node)
    return ConditionHandle(handle.step, ("return",))


def fail(name: str, message: str, *, details: OutputRef | None = None) -> StepHandle:
    """A fail step: when reached, the run stops as Failed with `message` (plus the details' summary).

    Put it in a condition's branch (`with gate.if_false(): fail(...)`); never cached.
    """
    args: dict[str, Any] = {"message": message}
    if details is not None:
        args["details"] = details
    node = StepNode(
        name=name,
        kind="fail",
        target=_FAIL,
        arguments=args,
        code_version=code_version(raise_failure),
        cache=CachePolicy(enabled=False),
        in_driver=True,
        templates=True,
    )
    return add_node(node)
