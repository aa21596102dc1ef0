"""Content-hashed caching: unchanged re-runs execute nothing; a change re-runs exactly its downstream."""

from __future__ import annotations

import datetime as dt
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
import tide_pipeline_samples as samples

from tideml.pipelines import PipelineService, StepCache, load_pipeline, run_pipeline
from tideml.workspace import Workspace

DIAMOND_ON_PATH = {"source", "other", "square", "total", "gate", "combine"}


def test_an_unchanged_rerun_executes_zero_steps(workspace: Workspace, marks: Path) -> None:
    first = run_pipeline(workspace, samples.diamond, executor="inline", progress=False)
    assert first.status == "Succeeded", first.error
    assert set(first.executed) == DIAMOND_ON_PATH and first.skipped == ["below_bar"]
    assert sorted(samples.executions()) == sorted(DIAMOND_ON_PATH - {"gate"})

    again = run_pipeline(workspace, samples.diamond, executor="inline", progress=False)
    assert again.status == "Succeeded"
    assert again.executed == []
    assert set(again.cached) == DIAMOND_ON_PATH
    assert len(samples.executions()) == len(DIAMOND_ON_PATH - {"gate"})  # nothing ran a second time
    for name in DIAMOND_ON_PATH:
        assert again.steps[name].outputs == first.steps[name].outputs
        assert again.steps[name].cache_key == first.steps[name].cache_key
        assert again.steps[name].cached_from_run == first.run_id
    assert again.output(workspace, "combine") == {"sum": 30, "k": 2, "product": 60}


@pytest.mark.parametrize(
    ("change", "consumer", "rerun"),
    [
        ({"n": 6}, "source", {"source", "square", "total", "gate", "combine"}),
        ({"k": 3}, "other", {"other", "combine"}),
        # the gate re-evaluates to the same verdict (identical output), so what it gates stays cached
        ({"min_auc": 0.75}, "gate", {"gate"}),
    ],
)
def test_changing_one_input_reruns_exactly_its_downstream(
    workspace: Workspace, marks: Path, change: dict[str, float], consumer: str, rerun: set[str]
) -> None:
    run_pipeline(workspace, samples.diamond, executor="inline", progress=False)
    before = len(samples.executions())
    result = run_pipeline(workspace, samples.diamond, change, executor="inline", progress=False)
    assert result.status == "Succeeded"
    assert set(result.executed) == rerun
    assert set(result.cached) == DIAMOND_ON_PATH - rerun
    assert sorted(samples.executions()[before:]) == sorted(rerun - {"gate"})
    downstream = samples.diamond.graph.descendants([consumer]) - {"below_bar"}
    if consumer != "gate":
        assert rerun == downstream
    else:
        assert rerun < downstream


def _write_pipeline(path: Path, square_body: str) -> None:
    path.write_text(
        textwrap.dedent(
            f"""
            from tideml.pipelines import pipeline, step
            from tide_pipeline_samples import mark, source, total

            @step
            def square(data):
                mark("square")
                {square_body}

            @step
            def report(summary: dict) -> dict:
                mark("report")
                return {{"sum": summary["sum"]}}

            @pipeline
            def pipe(n: int = 4) -> None:
                data = source(n=n)
                report(summary=total(data=square(data=data)))
                report.with_options(name="unrelated")(summary={{"sum": 0}})
            """
        )
    )


def test_changing_a_steps_code_reruns_it_and_its_dependents(
    workspace: Workspace, marks: Path, tmp_path: Path
) -> None:
    v1, v2, v3 = tmp_path / "v1.py", tmp_path / "v2.py", tmp_path / "v3.py"
    body = 'import polars as pl\n                return data.with_columns(y=pl.col("x") ** 2)'
    _write_pipeline(v1, body)
    _write_pipeline(v2, body.replace("** 2", "** 3"))
    _write_pipeline(v3, "# only a comment changed\n                " + body)
    first = run_pipeline(workspace, load_pipeline(f"{v1}:pipe"), executor="inline", progress=False)
    assert set(first.executed) == {"source", "square", "total", "report", "unrelated"}

    changed = run_pipeline(workspace, load_pipeline(f"{v2}:pipe"), executor="inline", progress=False)
    assert set(changed.executed) == {"square", "total", "report"}
    assert set(changed.cached) == {"source", "unrelated"}
    assert changed.output(workspace, "report") != first.output(workspace, "report")

    cosmetic = run_pipeline(workspace, load_pipeline(f"{v3}:pipe"), executor="inline", progress=False)
    assert set(cosmetic.executed) == set()  # v3's square normalises to v1's: its cache entry is reused


def test_a_rerun_that_reproduces_an_output_stops_invalidation_there(
    workspace: Workspace, marks: Path
) -> None:
    """`total` re-runs when `square` changes, but an identical `total` output keeps `gate` cached."""
    run_pipeline(workspace, samples.diamond, executor="inline", progress=False)
    StepCache(workspace).invalidate(
        run_pipeline(workspace, samples.diamond, executor="inline", progress=False).steps["total"].cache_key
        or ""
    )
    result = run_pipeline(workspace, samples.diamond, executor="inline", progress=False)
    assert result.executed == ["total"]
    assert {"gate", "combine"} <= set(result.cached)


def test_expiry_and_disabled_caching(workspace: Workspace, marks: Path) -> None:
    run_pipeline(workspace, samples.expiring, executor="inline", progress=False)
    soon = run_pipeline(workspace, samples.expiring, executor="inline", progress=False)
    assert soon.executed == ["uncached"] and soon.cached == ["short_lived"]
    time.sleep(0.4)
    later = run_pipeline(workspace, samples.expiring, executor="inline", progress=False)
    assert set(later.executed) == {"short_lived", "uncached"}
    assert samples.executions().count("uncached") == 3
    policy = samples.short_lived.cache
    assert policy.expire_after == dt.timedelta(seconds=0.3)
    entry = StepCache(workspace).lookup(later.steps["short_lived"].cache_key or "", policy)
    assert entry is not None and entry.run_id == later.run_id


def test_a_lost_artifact_is_recomputed_not_served(workspace: Workspace, marks: Path) -> None:
    first = run_pipeline(workspace, samples.diamond, executor="inline", progress=False)
    sha = first.steps["other"].outputs["return"].sha256
    obj = workspace.artifacts.root / "objects" / sha[:2] / sha
    obj.unlink()
    again = run_pipeline(workspace, samples.diamond, executor="inline", progress=False)
    assert again.executed == ["other"]
    assert workspace.artifacts.exists(sha)


def test_file_inputs_are_keyed_by_content_not_path(workspace: Workspace, marks: Path, tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("x\n1\n2\n")
    b = tmp_path / "moved" / "b.csv"
    b.parent.mkdir()
    b.write_text(a.read_text())
    first = run_pipeline(workspace, samples.from_file, {"path": str(a)}, executor="inline", progress=False)
    assert set(first.executed) == {"read_csv", "count"}
    moved = run_pipeline(workspace, samples.from_file, {"path": str(b)}, executor="inline", progress=False)
    assert moved.executed == []
    b.write_text("x\n1\n2\n3\n")
    edited = run_pipeline(workspace, samples.from_file, {"path": str(b)}, executor="inline", progress=False)
    assert set(edited.executed) == {"read_csv", "count"}
    assert edited.output(workspace, "count") == 3


def test_outputs_are_parquet_json_bytes_or_files_never_pickle(
    workspace: Workspace, marks: Path, tmp_path: Path
) -> None:
    result = run_pipeline(
        workspace, samples.formats, {"tmp": str(tmp_path)}, executor="inline", progress=False
    )
    assert result.status == "Succeeded", result.error
    codecs = {name: s.outputs["return"].codec for name, s in result.steps.items() if "return" in s.outputs}
    assert codecs["source"] == "polars" and codecs["as_pandas"] == "pandas"
    assert codecs["raw_bytes"] == "bytes" and codecs["write_file"] == "file"
    assert codecs["pandas_sum"] == "json"
    assert set(result.steps["split"].outputs) == {"train", "test"}
    assert result.output(workspace, "pandas_sum") == 15.0
    blob = result.steps["write_file"].outputs["return"]
    assert result.output(workspace, "read_file") == {"size": 6, "digest": blob.sha256, "rows": 3}
    assert result.output(workspace, "count") == 3
    frame = result.output(workspace, "split", "train")
    assert isinstance(frame, pl.DataFrame) and frame["x"].to_list() == [0, 2, 4]
    for art in (a for s in result.steps.values() for a in s.outputs.values()):
        assert not workspace.artifacts.get(art.sha256).startswith(b"\x80")  # no pickle protocol header

    bad = run_pipeline(workspace, samples.opaque, executor="inline", progress=False)
    assert bad.status == "Failed"
    assert "cannot persist an output of type tide_pipeline_samples.Opaque" in (bad.error or "")
    assert "pickle" in (bad.error or "")


def test_service_reports_history_and_key_ingredients(workspace: Workspace, marks: Path) -> None:
    svc = PipelineService(workspace)
    first = svc.run(samples.diamond, executor="inline", progress=False)
    second = svc.run(samples.diamond, {"k": 5}, executor="inline", progress=False)
    runs = svc.list_runs("diamond")
    assert [r.id for r in runs] == [second.run_id, first.run_id]
    view = svc.show(second.run_id)
    assert view.parameters == {"n": 5, "k": 5, "min_auc": 0.7}
    assert view.counts()["Cached"] == 4 and view.counts()["Succeeded"] == 2
    assert view.step("other").executed and not view.step("source").executed
    assert view.step("source").cached_from_run == first.run_id
    text = svc.explain(second.run_id, "other")
    assert "k = 5" in text and view.step("other").cache_key in text
    assert "source: making 5 rows" in svc.log(first.run_id, "source")
    assert svc.output(second.run_id, "combine")["product"] == 150
