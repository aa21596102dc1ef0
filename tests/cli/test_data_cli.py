"""`tide data generate`: files, summary, JSON output and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tideml.cli import main
from tideml.cli._app import app
from tideml.datasets import CLAIMS_COLUMNS, PROBABILITY_COLUMN, oracle_auc
from tideml.errors import ValidationError

runner = CliRunner()


def test_generate_json_reports_files_rows_and_fraud_rate(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = runner.invoke(
        app, ["data", "generate", "--policies", "3000", "--seed", "5", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    claims = pl.read_csv(out / "claims.csv")
    customers = pl.read_csv(out / "customers.csv")
    assert summary["policies"] == claims.height == customers.height == 3000
    assert summary["seed"] == 5 and summary["format"] == "csv"
    assert summary["files"]["claims"]["path"] == str(out / "claims.csv")
    assert summary["files"]["customers"]["bytes"] == (out / "customers.csv").stat().st_size
    assert summary["fraud_count"] == claims["fraud"].sum()
    assert summary["fraud_rate"] == pytest.approx(claims["fraud"].mean())
    assert summary["elapsed_seconds"] >= 0
    assert tuple(claims.columns) == CLAIMS_COLUMNS


def test_generate_prints_a_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "generate", "-n", "1500", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1,500 policies" in result.stdout
    assert "customers.csv" in result.stdout and "claims.csv" in result.stdout
    assert f"folder {tmp_path}" in result.stdout
    assert "fraud rate" in result.stdout


def test_generate_parquet_with_probability_and_model_options(tmp_path: Path) -> None:
    args = [
        "data",
        "generate",
        "--policies",
        "20000",
        "--seed",
        "2",
        "--out",
        str(tmp_path),
        "--format",
        "parquet",
        "--with-probability",
        "--female-fraud-odds-ratio",
        "1.0",
        "--female-share-shift",
        "0.1",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["config"]["female_fraud_odds_ratio"] == 1.0
    assert summary["config"]["female_share_shift"] == 0.1
    claims = pl.read_parquet(tmp_path / "claims.parquet")
    assert claims.columns[-1] == PROBABILITY_COLUMN
    assert 0.5 < oracle_auc(tmp_path) < 0.95
    female = pl.read_parquet(tmp_path / "customers.parquet")["customer_gender"].eq("Female").mean()
    assert female == pytest.approx(0.5416, abs=0.015)


def test_same_command_twice_writes_the_same_bytes(tmp_path: Path) -> None:
    for name in ("one", "two"):
        result = runner.invoke(
            app, ["data", "generate", "-n", "800", "--seed", "9", "--out", str(tmp_path / name)]
        )
        assert result.exit_code == 0, result.output
    assert (tmp_path / "one" / "claims.csv").read_bytes() == (tmp_path / "two" / "claims.csv").read_bytes()


def test_bad_policies_raise_a_tide_validation_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["data", "generate", "--policies", "-5", "--out", str(tmp_path / "x")], standalone_mode=False
    )
    assert isinstance(result.exception, ValidationError)
    assert result.exception.field == "policies"
    assert not (tmp_path / "x").exists()


def test_main_turns_a_bad_argument_into_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["data", "generate", "--policies", "-5", "--out", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error:")
    assert "policies" in err and "fix:" in err
    assert "Traceback" not in err


def test_unknown_format_is_a_usage_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["data", "generate", "--out", str(tmp_path), "--format", "xml"])
    assert exited.value.code == 2
    assert "xml" in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []
