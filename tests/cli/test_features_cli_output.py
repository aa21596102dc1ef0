"""What `tide features …` prints and writes: user data shown literally, readable wide results, output
files validated before anything runs, and clear errors for options that cannot work."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tide_cli import tide
from tideml.cli._app import console
from tideml.workspace import Workspace

WIDE_COLUMNS = [f"customer_attribute_{i:02d}" for i in range(14)]
LONG_GROUP = "customers_policy_features_for_fraud_2024"


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test renders as in an 80-column terminal, whatever runs pytest."""
    monkeypatch.setattr(console, "_width", 80)


@pytest.fixture
def ws(tmp_path: Path) -> str:
    """A workspace with group `g` (markup-like strings), a wide group and a long-named group."""
    root = tmp_path / "ws"
    with Workspace.init(root) as workspace:
        fs = workspace.features
        g = pl.DataFrame(
            {
                "id": [1, 2, 3, 4, 5],
                "ts": [1_709_251_200.0] * 5,
                "name": ["[/red] x", "[bold]hi", ":smile: plain", "d", "e"],
            }
        )
        fs.ingest("g", g, record_identifier="id", event_time="ts", progress=False)
        wide = pl.DataFrame(
            {"id": [1, 2], "ts": [1_709_251_200.0] * 2}
            | {c: [f"value_{c[-2:]}_a", f"value_{c[-2:]}_b"] for c in WIDE_COLUMNS}
        )
        fs.ingest("wide", wide, record_identifier="id", event_time="ts", progress=False)
        fs.ingest(LONG_GROUP, g, record_identifier="id", event_time="ts", progress=False)
        fs.update_group("g", description="[bold]about g", tags={"team": "[red]fraud"})
    return str(root)


# 1. user data is shown literally -------------------------------------------------------------------
def test_get_prints_markup_like_values_literally(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    code, out, err = tide(capsys, "features", "get", "g", "1", "-w", ws)
    assert code == 0, err
    assert "[/red] x" in out
    code, out, err = tide(capsys, "features", "get", "g", "2", "-w", ws)
    assert code == 0, err
    assert "[bold]hi" in out


def test_query_prints_values_and_column_names_literally(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    code, out, err = tide(capsys, "features", "query", "select * from g_latest order by id", "-w", ws)
    assert code == 0, err
    assert "[/red] x" in out and "[bold]hi" in out and ":smile: plain" in out
    sql = 'select id, name as "[i]label" from g_latest order by id'
    code, out, err = tide(capsys, "features", "query", sql, "-w", ws)
    assert code == 0, err
    assert "[i]label" in out


def test_query_single_value_is_printed_literally(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    code, out, err = tide(capsys, "features", "query", "select name from g_latest where id = 1", "-w", ws)
    assert code == 0, err
    assert out.strip() == "[/red] x"


def test_describe_and_list_show_descriptions_and_tags_literally(
    capsys: pytest.CaptureFixture[str], ws: str
) -> None:
    code, out, err = tide(capsys, "features", "describe", "g", "-w", ws)
    assert code == 0, err
    assert "[bold]about g" in out
    code, out, err = tide(capsys, "features", "list", "-w", ws)
    assert code == 0, err
    assert "team=[red]fraud" in out


# 2 and 3. output files --------------------------------------------------------------------------
def test_query_output_in_a_missing_folder_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], ws: str, tmp_path: Path
) -> None:
    target = tmp_path / "nonexistent" / "dir" / "q.parquet"
    code, _, err = tide(capsys, "features", "query", "select * from g", "--output", str(target), "-w", ws)
    assert code == 2
    assert "query output: --output" in err and "create the folder or pick another path" in err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_query_output_format_follows_the_suffix(
    capsys: pytest.CaptureFixture[str], ws: str, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"q{suffix}"
    sql = "select id, name from g_latest order by id"
    code, out, err = tide(capsys, "features", "query", sql, "--output", str(target), "-w", ws)
    assert code == 0, err
    assert "wrote 5 rows" in out
    back = pl.read_parquet(target) if suffix == ".parquet" else pl.read_csv(target)
    assert back["name"].to_list() == ["[/red] x", "[bold]hi", ":smile: plain", "d", "e"]


def test_query_output_with_another_suffix_is_refused(
    capsys: pytest.CaptureFixture[str], ws: str, tmp_path: Path
) -> None:
    target = tmp_path / "q.txt"
    code, _, err = tide(capsys, "features", "query", "select * from g", "--output", str(target), "-w", ws)
    assert code == 2
    assert "--output" in err and ".parquet" in err and ".csv" in err
    assert not target.exists()


def test_dataset_output_in_a_missing_folder_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], ws: str, tmp_path: Path
) -> None:
    target = tmp_path / "nonexistent" / "dir" / "d.parquet"
    code, _, err = tide(capsys, "features", "dataset", "-f", "g.*", "--output", str(target), "-w", ws)
    assert code == 2
    assert "dataset request: output" in err and "create the folder or pick another path" in err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert not (tmp_path / "nonexistent").exists()


def test_dataset_output_must_be_parquet(capsys: pytest.CaptureFixture[str], ws: str, tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    code, _, err = tide(capsys, "features", "dataset", "-f", "g.*", "--output", str(target), "-w", ws)
    assert code == 2
    assert "output" in err and "must end in .parquet" in err
    assert not target.exists()
    target = tmp_path / "x.parquet"
    code, out, err = tide(capsys, "features", "dataset", "-f", "g.*", "--output", str(target), "-w", ws)
    assert code == 0, err
    assert pl.read_parquet(target).height == 5 and "written to" in out


def test_output_folder_that_is_a_file_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], ws: str, tmp_path: Path
) -> None:
    (tmp_path / "plain").write_text("not a folder")
    target = tmp_path / "plain" / "q.csv"
    code, _, err = tide(capsys, "features", "query", "select * from g", "--output", str(target), "-w", ws)
    assert code == 2
    assert "is not a folder" in err and "create the folder or pick another path" in err
    (tmp_path / "folder.csv").mkdir()
    target = tmp_path / "folder.csv"
    code, _, err = tide(capsys, "features", "query", "select * from g", "--output", str(target), "-w", ws)
    assert code == 2 and "is a folder" in err


# 4. wide results stay readable ------------------------------------------------------------------
def test_wide_query_result_is_readable_in_80_columns(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    code, out, err = tide(capsys, "features", "query", "from wide_latest order by id limit 2", "-w", ws)
    assert code == 0, err
    assert "…" not in out
    for column in WIDE_COLUMNS:
        assert column in out
        assert f"value_{column[-2:]}_a" in out and f"value_{column[-2:]}_b" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_list_never_truncates_group_names(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    code, out, err = tide(capsys, "features", "list", "-w", ws)
    assert code == 0, err
    assert LONG_GROUP in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80


# 5. --limit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", ["0", "-1"])
def test_query_limit_below_one_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], ws: str, limit: str
) -> None:
    code, out, err = tide(capsys, "features", "query", "select id from g", "--limit", limit, "-w", ws)
    assert code == 2
    assert "--limit" in err and out == ""


def test_query_limit_footer_counts_the_rows_not_shown(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    code, out, err = tide(
        capsys, "features", "query", "select id from g order by id", "--limit", "2", "-w", ws
    )
    assert code == 0, err
    assert "… 3 more rows (5 in all" in out
    assert out.splitlines()[1].split() == ["┃", "id", "┃"]  # a narrow result stays a grid
    code, out, err = tide(
        capsys, "features", "query", "select id from g order by id", "--limit", "4", "-w", ws
    )
    assert code == 0, err
    assert "… 1 more row (5 in all" in out


# 6. TTL --------------------------------------------------------------------------------------
def test_describe_prints_the_ttl_in_words(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    assert tide(capsys, "features", "update", "g", "--ttl", "7d", "-w", ws)[0] == 0
    code, out, err = tide(capsys, "features", "describe", "g", "-w", ws)
    assert code == 0, err
    assert "ttl 7 days" in out and "unit" not in out
    assert tide(capsys, "features", "update", "g", "--ttl", "1h", "-w", ws)[0] == 0
    assert "ttl 1 hour)" in tide(capsys, "features", "describe", "g", "-w", ws)[1]


# 7. one list value ------------------------------------------------------------------------------
def test_single_list_value_is_rendered_like_any_value(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    code, out, err = tide(capsys, "features", "query", "select list(id order by id) from g_latest", "-w", ws)
    assert code == 0, err
    assert out.strip() == "[1, 2, 3, 4, 5]"


# 8. update with nothing to change ---------------------------------------------------------------
def test_update_without_options_is_a_usage_error(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    before = json.loads(tide(capsys, "features", "describe", "g", "-w", ws, "--json")[1])["schema_version"]
    code, out, err = tide(capsys, "features", "update", "g", "-w", ws)
    assert code == 2
    assert "nothing to update" in err and "--add-feature" in err and "updated" not in out
    after = json.loads(tide(capsys, "features", "describe", "g", "-w", ws, "--json")[1])["schema_version"]
    assert after == before


# 9. --label without a group ---------------------------------------------------------------------
def test_dataset_label_without_group_is_a_clear_error(capsys: pytest.CaptureFixture[str], ws: str) -> None:
    code, _, err = tide(capsys, "features", "dataset", "-f", "g.*", "--label", "fraud", "-w", ws)
    assert code == 2
    assert "--label" in err and "write the label as group.feature" in err
    assert "no such feature group" not in err
