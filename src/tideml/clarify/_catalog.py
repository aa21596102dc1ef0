"""Metric codes, Clarify's exact description strings (misspelling included) and their functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tideml.clarify import posttraining as post
from tideml.clarify import pretraining as pre
from tideml.clarify._arith import Q
from tideml.clarify._pair import Pair

__all__ = ["GROUP_METRICS", "METRICS", "POST_TRAINING", "PRE_TRAINING", "MetricInfo"]


@dataclass(frozen=True)
class MetricInfo:
    """One metric: code, Clarify description, stage and (except FT) its count-table function."""

    code: str
    description: str
    stage: str
    fn: Callable[[Pair], Q] | None
    uses_facet: bool = True


_ROWS: list[MetricInfo] = [
    MetricInfo("CDDL", "Conditional Demographic Disparity in Labels (CDDL)", "pre", pre.CDDL),
    MetricInfo("CI", "Class Imbalance (CI)", "pre", pre.CI),
    MetricInfo("DPL", "Difference in Positive Proportions in Labels (DPL)", "pre", pre.DPL),
    MetricInfo("JS", "Jensen-Shannon Divergence (JS)", "pre", pre.JS),
    MetricInfo("KL", "Kullback-Liebler Divergence (KL)", "pre", pre.KL),
    MetricInfo("KS", "Kolmogorov-Smirnov Distance (KS)", "pre", pre.KS),
    MetricInfo("LP", "L-p Norm (LP)", "pre", pre.LP),
    MetricInfo("TVD", "Total Variation Distance (TVD)", "pre", pre.TVD),
    MetricInfo("AD", "Accuracy Difference (AD)", "post", post.AD),
    MetricInfo("CDDPL", "Conditional Demographic Disparity in Predicted Labels (CDDPL)", "post", post.CDDPL),
    MetricInfo("DAR", "Difference in Acceptance Rates (DAR)", "post", post.DAR),
    MetricInfo("DCA", "Difference in Conditional Acceptance (DCA)", "post", post.DCA),
    MetricInfo("DCR", "Difference in Conditional Rejection (DCR)", "post", post.DCR),
    MetricInfo("DI", "Disparate Impact (DI)", "post", post.DI),
    MetricInfo("DPPL", "Difference in Positive Proportions in Predicted Labels (DPPL)", "post", post.DPPL),
    MetricInfo("DRR", "Difference in Rejection Rates (DRR)", "post", post.DRR),
    MetricInfo("FT", "Flip Test (FT)", "post", None),
    MetricInfo("GE", "Generalized Entropy (GE)", "post", post.GE, uses_facet=False),
    MetricInfo("RD", "Recall Difference (RD)", "post", post.RD),
    MetricInfo("SD", "Specificity Difference (SD)", "post", post.SD),
    MetricInfo("TE", "Treatment Equality (TE)", "post", post.TE),
]

METRICS: dict[str, MetricInfo] = {m.code: m for m in _ROWS}
PRE_TRAINING: tuple[str, ...] = tuple(sorted(m.code for m in _ROWS if m.stage == "pre"))
POST_TRAINING: tuple[str, ...] = tuple(sorted(m.code for m in _ROWS if m.stage == "post"))
GROUP_METRICS = frozenset({"CDDL", "CDDPL"})
