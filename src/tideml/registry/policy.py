"""Approval policies: rules such as `test_auc >= 0.75` or `abs(dppl) <= 0.1` over a version's metrics."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tideml.errors import ValidationError

__all__ = ["Rule", "RuleResult", "check_policy", "parse_rule"]

_RULE = re.compile(
    r"^\s*(?:(?P<abs>abs)\(\s*(?P<m1>[A-Za-z_][\w.]*)\s*\)|(?P<m2>[A-Za-z_][\w.]*))"
    r"\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Rule:
    """One comparison of a metric (optionally its absolute value) with a constant."""

    text: str
    metric: str
    absolute: bool
    op: str
    value: float

    def evaluate(self, metrics: Mapping[str, float]) -> RuleResult:
        if self.metric not in metrics:
            return RuleResult(self, None, False, f"metric {self.metric!r} is not in the version's evidence")
        observed = float(metrics[self.metric])
        subject = abs(observed) if self.absolute else observed
        passed = not math.isnan(subject) and _OPS[self.op](subject, self.value)
        shown = f"abs({self.metric}) = {subject:.6g}" if self.absolute else f"{self.metric} = {subject:.6g}"
        return RuleResult(self, observed, passed, shown)


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    observed: float | None
    passed: bool
    detail: str


def parse_rule(text: str) -> Rule:
    """Parse `metric OP number` or `abs(metric) OP number`."""
    m = _RULE.match(text)
    if m is None:
        raise ValidationError(
            f"cannot parse rule {text!r}",
            obj="approval policy",
            field="rule",
            fix="write rules like 'test_auc >= 0.75' or 'abs(dppl) <= 0.1'",
        )
    return Rule(
        text=text.strip(),
        metric=m["m1"] or m["m2"],
        absolute=m["abs"] is not None,
        op=m["op"],
        value=float(m["value"]),
    )


def check_policy(rules: list[str], metrics: Mapping[str, float]) -> list[RuleResult]:
    """Evaluate every rule; the caller refuses approval if any result did not pass."""
    return [parse_rule(r).evaluate(metrics) for r in rules]
