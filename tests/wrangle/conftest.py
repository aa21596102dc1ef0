"""Parametrise the wrangling conformance tests over the operator catalogue in `wrangle_cases.py`."""

from __future__ import annotations

import pytest
from wrangle_cases import CASES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes `case` once per catalogue entry (or per entry that can be broken)."""
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", CASES, ids=[c.id for c in CASES])
    for name, attr in (("bad_column_case", "bad_column"), ("bad_type_case", "bad_type")):
        if name in metafunc.fixturenames:
            chosen = [c for c in CASES if getattr(c, attr) is not None]
            metafunc.parametrize(name, chosen, ids=[c.id for c in chosen])
