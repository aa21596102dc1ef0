"""Golden tests: `compat="smclarify"` against smclarify 0.5, on frames that trigger its documented quirks.

smclarify is a benchmark peer, never a runtime dependency: it lives in its own environment
(.venv-peers, pandas<3). Its answers on these cases are frozen in `fixtures/smclarify_0.5_golden.json`
(the input frames and its analysis), which every run compares against; where smclarify is installed,
a second test re-runs it and checks the fixture is still what it says. Regenerate with
`python tests/clarify/test_clarify_smclarify_oracle.py` (needs .venv-peers)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tideml.clarify import Facet, bias_report

PEERS = Path(
    os.environ.get("TIDE_PEERS_PYTHON", Path(__file__).resolve().parents[2] / ".venv-peers/bin/python")
)

SCRIPT = r"""
import io, json, sys
import pandas as pd
from smclarify.bias import report
cases = json.loads(sys.stdin.read())
out = []
for case in cases:
    df = pd.read_json(io.StringIO(case["frame"]), orient="split")
    for c in case.get("categorical", []):
        df[c] = df[c].astype("category")
    label = report.LabelColumn(case["label"], df[case["label"]], case["label_values"])
    facet = report.FacetColumn(case["facet"], case["facet_values"])
    group = df[case["group"]] if case.get("group") else None
    res = {}
    pre = report.bias_report(df.drop(columns=[case["pred"]]), facet, label, report.StageType.PRE_TRAINING,
                             metrics=["all"], group_variable=group)
    pred = report.LabelColumn(case["pred"], df[case["pred"]], case["label_values"])
    post = report.bias_report(df, facet, label, report.StageType.POST_TRAINING, pred, metrics=["all"],
                              group_variable=group)
    out.append({"pre": pre, "post": post})
print(json.dumps(out))
"""


def smclarify_available() -> bool:
    if not PEERS.exists():
        return False
    probe = subprocess.run([str(PEERS), "-c", "import smclarify"], capture_output=True, check=False)
    return probe.returncode == 0


needs_smclarify = pytest.mark.skipif(
    not smclarify_available(), reason=f"smclarify environment {PEERS} is absent"
)
FIXTURE = Path(__file__).parent / "fixtures" / "smclarify_0.5_golden.json"


def cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    n = 300
    base = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M", "X"], n),
            "state": rng.choice(["CA", "WA", "OR"], n),
            "y": rng.integers(0, 2, n),
            "yhat": rng.integers(0, 2, n),
            "x1": rng.normal(size=n),
            "x2": rng.integers(0, 5, n).astype(float),
        }
    )
    # d ("X") has no positive label: smclarify's KL on the shared support is negative
    no_pos = base.copy()
    no_pos.loc[no_pos["sex"] == "X", "y"] = 0
    # nobody in d is predicted positive, a few in a: DCA = inf - finite, DI = 0
    no_pred = base.copy()
    no_pred.loc[no_pred["sex"] == "F", "yhat"] = 0
    # nobody predicted positive at all: c_a = c_d = inf, smclarify gives 0 for inf - inf
    none_pred = base.copy()
    none_pred["yhat"] = 0
    none_pred.loc[0, "yhat"] = 1  # smclarify refuses an all-negative prediction column
    none_pred.loc[0, "sex"] = "M"
    # tiny integer frame: smclarify's uniqueness heuristic calls the 0/1 label continuous
    tiny = pd.DataFrame(
        {
            "sex": ["F", "M", "F", "M", "F", "M", "F", "M"],
            "state": ["CA"] * 8,
            "y": [1, 0, 1, 1, 0, 1, 2, 2],
            "yhat": [1, 1, 0, 1, 0, 1, 2, 0],
            "x1": np.arange(8.0),
            "x2": np.arange(8.0),
        }
    )
    out = []
    for frame, facet_values, group, cat in (
        (base, ["F"], "state", []),
        (base, None, None, []),
        (no_pos, ["X"], "state", []),
        (no_pred, ["F"], None, []),
        (none_pred, ["F"], "state", []),
        (tiny, ["F"], None, []),
        (base.drop(columns=["state"]), ["F"], None, []),  # only numeric features: FT gets a value
    ):
        out.append(
            {
                "frame": frame.to_json(orient="split"),
                "label": "y",
                "label_values": [1],
                "facet": "sex",
                "facet_values": facet_values,
                "group": group,
                "pred": "yhat",
                "categorical": cat,
            }
        )
    # a continuous facet with a threshold
    out.append(
        {
            "frame": base.assign(age=rng.integers(18, 70, n)).to_json(orient="split"),
            "label": "y",
            "label_values": [1],
            "facet": "age",
            "facet_values": [40],
            "group": "state",
            "pred": "yhat",
        }
    )
    return out


def ours(case: dict[str, Any]) -> dict[str, Any]:
    frame = pd.read_json(io.StringIO(case["frame"]), orient="split")
    r = bias_report(
        frame,
        label=case["label"],
        label_values_or_threshold=case["label_values"],
        facets=[Facet(case["facet"], case["facet_values"])],
        group_variable=case["group"],
        predicted_label=case["pred"],
        compat="smclarify",
    )
    doc = r.analysis_json()
    return {
        "pre": doc["pre_training_bias_metrics"]["facets"][case["facet"]],
        "post": doc["post_training_bias_metrics"]["facets"][case["facet"]],
    }


def run_smclarify(all_cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(PEERS), "-c", SCRIPT],
        input=json.dumps(all_cases),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def compare(all_cases: list[dict[str, Any]], theirs_all: list[dict[str, Any]]) -> int:
    """Assert our compat output equals smclarify's, metric by metric; return how many were compared."""
    compared = 0
    for case, theirs in zip(all_cases, theirs_all, strict=True):
        mine = ours(case)
        for stage in ("pre", "post"):
            assert [e["value_or_threshold"] for e in mine[stage]] == [
                e["value_or_threshold"] for e in theirs[stage]
            ]
            for m_entry, t_entry in zip(mine[stage], theirs[stage], strict=True):
                assert [m["name"] for m in m_entry["metrics"]] == [m["name"] for m in t_entry["metrics"]]
                for m, t in zip(m_entry["metrics"], t_entry["metrics"], strict=True):
                    where = f"{case['facet']}={m_entry['value_or_threshold']} {m['name']}"
                    assert m["description"] == t["description"], where
                    if t["value"] is None:
                        assert m["value"] is None, where
                        assert ("error" in m) == ("error" in t), where
                    elif isinstance(t["value"], str):
                        assert m["value"] == t["value"], where
                    else:
                        assert isinstance(m["value"], float), where
                        assert math.isclose(m["value"], t["value"], rel_tol=1e-9, abs_tol=1e-12), (
                            where,
                            m,
                            t,
                        )
                    compared += 1
    return compared


def test_compat_mode_equals_smclarify_frozen_answers() -> None:
    golden = json.loads(FIXTURE.read_text())
    assert compare(golden["cases"], golden["smclarify"]) > 150
    ft = next(e for e in ours(golden["cases"][6])["post"][0]["metrics"] if e["name"] == "FT")
    assert isinstance(ft["value"], float) and ft["value"] != 0.0  # FT was compared as a number


@needs_smclarify
def test_frozen_answers_are_what_smclarify_says() -> None:
    golden = json.loads(FIXTURE.read_text())
    assert run_smclarify(golden["cases"]) == golden["smclarify"]


@needs_smclarify
def test_compat_mode_equals_smclarify_on_fresh_cases() -> None:
    all_cases = cases()
    assert compare(all_cases, run_smclarify(all_cases)) > 150


if __name__ == "__main__":  # regenerate the fixture
    frozen = cases()
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(
        json.dumps({"smclarify_version": "0.5", "cases": frozen, "smclarify": run_smclarify(frozen)})
    )
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes)")
