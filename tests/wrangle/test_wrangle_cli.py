"""`tide wrangle …` as a user runs it: outputs, JSON, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import tideml.cli.wrangle  # noqa: F401  -- registers the command group
from tide_cli import tide
from tideml import Workspace

FLOWS = Path(__file__).resolve().parents[2] / "examples" / "autoclaims" / "flows"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    Workspace.init(tmp_path / "ws").close()
    return tmp_path / "ws"


def test_run_fits_writes_parquet_and_can_save_the_fitted_flow(
    capsys: pytest.CaptureFixture[str], workspace: Path, article_data: Path, tmp_path: Path
) -> None:
    code, out, err = tide(
        capsys,
        "wrangle", "run", str(FLOWS / "claims.flow.json"),
        "--input", f"claims={article_data / 'claims.csv'}",
        "--output", str(tmp_path / "out"),
        "--save-fitted", str(tmp_path / "claims.fitted.json"),
        "--workspace", str(workspace), "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["outputs"]["claims"]["rows"] == 5000
    assert len(result["outputs"]["claims"]["columns"]) == 31
    assert pl.read_parquet(tmp_path / "out" / "claims.parquet").shape == (5000, 31)
    assert (tmp_path / "claims.fitted.json").exists()

    code, out, err = tide(
        capsys,
        "wrangle", "run", str(FLOWS / "claims.flow.json"),
        "--input", f"claims={article_data / 'claims.csv'}",
        "--output", str(tmp_path / "again"),
        "--fitted", f"sha256:{result['fitted_sha256']}",
        "--workspace", str(workspace),
    )  # fmt: skip
    assert code == 0, err
    assert "applied flow claims (inference mode)" in out


def test_a_bad_step_is_one_line_on_stderr_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], workspace: Path, article_data: Path, tmp_path: Path
) -> None:
    flow = json.loads((FLOWS / "claims.flow.json").read_text())
    flow["steps"][4]["column"] = "incident_kind"
    (tmp_path / "bad.flow.json").write_text(json.dumps(flow))
    code, _out, err = tide(
        capsys,
        "wrangle", "run", str(tmp_path / "bad.flow.json"),
        "--input", f"claims={article_data / 'claims.csv'}",
        "--output", str(tmp_path / "out"),
        "--workspace", str(workspace),
    )  # fmt: skip
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # (a progress line may precede)
    assert len(errors) == 1
    assert "flow 'claims' steps[4] (one_hot): incident_kind: unknown column" in errors[0]
    assert "did you mean" in errors[0]
    assert not (tmp_path / "out").exists()


def test_custom_code_needs_the_trust_flag(
    capsys: pytest.CaptureFixture[str], workspace: Path, tmp_path: Path
) -> None:
    flow = {
        "version": 1,
        "name": "custom",
        "sources": {"t": {"kind": "csv"}},
        "steps": [
            {
                "op": "python",
                "trusted": True,
                "code": "def transform(row):\n    return {'a': row['a'] * 10}\n",
                "columns": {"a": "int64"},
            }
        ],
    }
    (tmp_path / "custom.flow.json").write_text(json.dumps(flow))
    (tmp_path / "in.csv").write_text("a\n1\n2\n")
    args = ["wrangle", "run", str(tmp_path / "custom.flow.json"), "--input", f"t={tmp_path / 'in.csv'}"]
    args += ["--output", str(tmp_path / "out"), "--workspace", str(workspace)]
    code, _, err = tide(capsys, *args)
    assert code == 2 and "refused unless you trust the flow" in err and "--trust-custom-code" in err
    assert not (tmp_path / "out").exists()
    code, _, err = tide(capsys, *args, "--trust-custom-code")
    assert code == 0, err
    assert pl.read_parquet(tmp_path / "out" / "t.parquet")["a"].to_list() == [10, 20]


def test_bad_input_option_is_a_clear_error(capsys: pytest.CaptureFixture[str], workspace: Path) -> None:
    code, _, err = tide(
        capsys,
        "wrangle",
        "run",
        str(FLOWS / "claims.flow.json"),
        "--input",
        "claims.csv",
        "--workspace",
        str(workspace),
    )
    assert code == 2 and "is not NAME=PATH" in err


def test_analyze_writes_json_and_html_and_records_lineage(
    capsys: pytest.CaptureFixture[str], workspace: Path, article_data: Path, tmp_path: Path
) -> None:
    code, out, err = tide(
        capsys,
        "wrangle", "analyze", str(article_data / "customers.csv"), "--target", "customer_gender",
        "--out", str(tmp_path / "analysis"), "--workspace", str(workspace), "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["report"]["problem"] == "classification"
    assert {c["value"] for c in data["report"]["class_balance"]} == {"Male", "Female", "Unkown", "Other"}
    assert (tmp_path / "analysis" / "analysis.html").exists()
    with Workspace.open(workspace) as ws:
        assert [a.status for a in ws.lineage.actions("wrangle.analyze")] == ["Completed"]


def test_export_and_show(capsys: pytest.CaptureFixture[str], article_data: Path, tmp_path: Path) -> None:
    from tideml.wrangle import Flow

    Flow.load(FLOWS / "customers.flow.json").fit(article_data / "customers.csv").save(
        tmp_path / "fitted.json"
    )
    code, out, err = tide(
        capsys, "wrangle", "export", str(tmp_path / "fitted.json"), "--to", str(tmp_path / "c.py")
    )
    assert code == 0, err
    assert (tmp_path / "c.py").read_text().startswith("#!/usr/bin/env python3")
    code, out, err = tide(capsys, "wrangle", "show", str(tmp_path / "fitted.json"), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["name"] == "customers" and len(shown["steps"]) == 8
    assert len(shown["output_columns"]["customers"]) == 19
    code, out, err = tide(capsys, "wrangle", "show", str(FLOWS / "claims.flow.json"))
    assert code == 0 and "one_hot" in out
