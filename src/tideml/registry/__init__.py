"""The model registry: groups, versions with evidence, evidence-gated approval, aliases, audit trail."""

from tideml.registry.card import compare_versions, model_card_html, model_card_markdown
from tideml.registry.policy import Rule, RuleResult, check_policy, parse_rule
from tideml.registry.service import AuditEvent, ModelGroup, ModelVersion, Registry, Status

__all__ = [
    "AuditEvent",
    "ModelGroup",
    "ModelVersion",
    "Registry",
    "Rule",
    "RuleResult",
    "Status",
    "check_policy",
    "compare_versions",
    "model_card_html",
    "model_card_markdown",
    "parse_rule",
]
