"""The transform catalogue: one module per family, every operator registered in `OPERATORS` by name."""

from tideml.wrangle.transforms import (  # noqa: F401  -- importing a family registers its operators
    cast,
    columns,
    combine,
    custom,
    encode,
    formula,
    missing,
    numeric,
    sampling,
    strings,
    temporal,
)
from tideml.wrangle.transforms.base import (
    OPERATORS,
    Operator,
    RowOperator,
    Runtime,
    StepContext,
    StepParams,
)

__all__ = ["OPERATORS", "Operator", "RowOperator", "Runtime", "StepContext", "StepParams"]
