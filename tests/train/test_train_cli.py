"""`tide train …` as a user runs it: JSON output, tables, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import tideml.cli.train  # noqa: F401  -- registers `tide train` (the lead adds it to tideml.cli)
from tide_cli import tide
from tideml.workspace import Workspace


@pytest.fixture
def setup(tmp_path: Path, article_frame: pl.DataFrame) -> tuple[Path, Path]:
    data = tmp_path / "article.parquet"
    article_frame.write_parquet(data)
    ws = tmp_path / "ws"
    Workspace.init(ws).close()
    spec = tmp_path / "spec.yaml"
    spec.write_text("n_jobs: 1\nbootstrap_resamples: 100\nhyperparameters:\n  num_round: 60\n")
    return ws, spec


def test_run_prints_test_metrics_and_json(
    capfd: pytest.CaptureFixture[str], setup: tuple[Path, Path], tmp_path: Path
) -> None:
    ws, spec = setup
    data = str(tmp_path / "article.parquet")
    code, out, err = tide(
        capfd,
        "train",
        "run",
        data,
        "-w",
        str(ws),
        "--spec",
        str(spec),
        "--no-progress",
        "--json",
        "--out",
        str(tmp_path / "model"),
    )
    assert code == 0, err
    summary = json.loads(out)
    assert 0.6 < summary["test"]["roc_auc"] < 1.0
    assert summary["split"]["test"]["entities"] == 1000
    assert (tmp_path / "model" / "model.json").is_file() and (tmp_path / "model" / "model.ubj").is_file()
    code, out, err = tide(
        capfd, "train", "run", data, "-w", str(ws), "--spec", str(spec), "--no-progress", "--cv-folds", "3"
    )
    assert code == 0, err
    assert "test ROC-AUC (95% CI)" in out and "1x3-fold OOF ROC-AUC" in out and "model   " in out


def test_tune_prints_and_stores_the_trials(
    capfd: pytest.CaptureFixture[str], setup: tuple[Path, Path], tmp_path: Path
) -> None:
    ws, spec = setup
    space = tmp_path / "space.yaml"
    space.write_text(  # a whole TuneSpec
        "cv_folds: 3\nspace:\n  max_depth: {type: int, low: 1, high: 3}\n"
        "  eta: {type: float, low: 0.03, high: 0.3, log: true}\n"
    )
    whole = tmp_path / "space-only.yaml"  # or just the space
    whole.write_text("max_depth: {type: int, low: 1, high: 2}\n")
    data = str(tmp_path / "article.parquet")
    common = ["train", "tune", data, "-w", str(ws), "--spec", str(spec), "--no-progress"]
    args = [*common, "--space", str(space), "--trials", "3"]
    code, out, err = tide(capfd, *args, "--study", "s1")
    assert code == 0, err
    assert "study s1: trials" in out and "baseline" in out and "max_depth" in out
    code, out, _ = tide(capfd, "train", "studies", "-w", str(ws), "--json")
    assert [s["name"] for s in json.loads(out)] == ["s1"]
    code, out, _ = tide(capfd, "train", "trials", "s1", "-w", str(ws), "--json")
    trials = json.loads(out)
    assert [t["number"] for t in trials] == [0, 1, 2] and set(trials[0]["params"]) == {"max_depth", "eta"}
    code, out, err = tide(capfd, *args, "--study", "s2", "--warm-start", "s1", "--json")
    assert code == 0, err
    assert json.loads(out)["warm_started"] >= 1
    code, out, err = tide(capfd, *common, "--space", str(whole), "--trials", "2", "--json")
    assert code == 0, err
    assert set(json.loads(out)["best_params"]) == {"max_depth"}


def test_mitigate_table(capfd: pytest.CaptureFixture[str], setup: tuple[Path, Path], tmp_path: Path) -> None:
    ws, spec = setup
    data = str(tmp_path / "article.parquet")
    code, out, err = tide(
        capfd,
        "train",
        "mitigate",
        data,
        "-w",
        str(ws),
        "--spec",
        str(spec),
        "--methods",
        "none,reweighing",
        "--no-progress",
        "--json",
    )
    assert code == 0, err
    methods = [m["method"] for m in json.loads(out)["methods"]]
    assert methods == ["none", "reweighing"]


def test_user_mistakes_are_one_line_with_an_exit_code(
    capfd: pytest.CaptureFixture[str], setup: tuple[Path, Path], tmp_path: Path
) -> None:
    ws, _ = setup
    bad = tmp_path / "bad.yaml"
    bad.write_text("hyperparameters:\n  eta: 3\n")
    data = str(tmp_path / "article.parquet")
    cases = [
        (["train", "run", data, "-w", str(ws), "--spec", str(bad)], 2, "hyperparameters.eta"),
        (["train", "run", str(tmp_path / "missing.parquet"), "-w", str(ws)], 2, "no such file"),
        (["train", "trials", "nope", "-w", str(ws)], 3, "no such study"),
        (["train", "tune", data, "-w", str(ws), "--sampler", "annealing"], 2, "sampler"),
    ]
    for args, exit_code, message in cases:
        code, _, err = tide(capfd, *args)
        assert code == exit_code, err
        assert message in err and err.strip().count("\n") == 0
    # and as a real process: no traceback
    script = "import sys; import tideml.cli.train; from tideml.cli import main; sys.argv[0] = 'tide'; main()"
    r = subprocess.run(
        [sys.executable, "-c", script, *cases[0][0]], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and "hyperparameters.eta" in r.stderr
