"""Loading flow files: JSON and YAML, defaults, hashing, and clear errors for malformed flows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tideml.errors import NotFound, ValidationError
from tideml.wrangle import FittedFlow, Flow

FLOWS = Path(__file__).resolve().parents[2] / "examples" / "autoclaims" / "flows"


def doc(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": 1, "name": "f", "sources": {"t": {"kind": "csv"}}, "steps": list(steps), **extra}


def test_example_flows_load_and_round_trip() -> None:
    for path in FLOWS.glob("*.flow.json"):
        flow = Flow.load(path)
        again = Flow.from_dict(json.loads(flow.to_json()))
        assert again.to_dict() == flow.to_dict()
        assert flow.base_dir == FLOWS
        assert again.sha256 == flow.sha256


def test_yaml_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text(
        "version: 1\nname: f\nsources:\n  t: {kind: csv}\nsteps:\n  - op: one_hot\n    column: c\n"
    )
    flow = Flow.load(tmp_path / "f.yaml")
    assert flow.steps[0].op == "one_hot"
    assert flow.sha256 == Flow.from_dict(doc({"op": "one_hot", "column": "c"})).sha256


def test_hash_ignores_formatting_but_not_content() -> None:
    a = Flow.loads(json.dumps(doc({"op": "one_hot", "column": "c"})))
    b = Flow.loads(json.dumps(doc({"column": "c", "op": "one_hot", "on_unseen": "error"}), indent=4))
    c = Flow.loads(json.dumps(doc({"op": "one_hot", "column": "d"})))
    assert a.sha256 == b.sha256 != c.sha256


def test_frames_resolve_to_the_previous_step_by_default() -> None:
    flow = Flow.from_dict(
        {
            "version": 1,
            "name": "f",
            "sources": {"a": {"kind": "csv"}, "b": {"kind": "parquet"}},
            "steps": [
                {"op": "drop_columns", "columns": ["x"]},
                {"op": "drop_columns", "frame": "b", "columns": ["y"], "into": "b2"},
                {"op": "join", "right": "a", "on": ["k"]},
            ],
        }
    )
    resolved = flow.resolve()
    assert [(s.frame, s.into) for s in resolved] == [("a", "a"), ("b", "b2"), ("b2", "b2")]
    assert flow.output_frames() == {"b2": "b2"}


@pytest.mark.parametrize(
    ("data", "where", "what"),
    [
        (doc({"op": "explode", "column": "c"}), "steps[0]", "unknown operator 'explode'"),
        (doc({"column": "c"}), "steps[0]", "the step has no 'op'"),
        (
            doc({"op": "one_hot", "column": "c", "on_unseen": "ignore"}),
            "steps[0] (one_hot): on_unseen",
            "Input should be",
        ),
        (
            doc({"op": "drop_columns", "columns": ["a"]}, {"op": "one_hot"}),
            "steps[1] (one_hot): column",
            "Field required",
        ),
        (doc({"op": "one_hot", "column": "c", "colour": 1}), "steps[0] (one_hot): colour", "Extra inputs"),
        (
            doc({"op": "scale", "columns": ["a", "a"], "method": "standard"}),
            "steps[0] (scale): columns",
            "twice",
        ),
        (doc({"op": "ordinal", "column": "c", "on_unseen": "value"}), "steps[0] (ordinal)", "unseen_value"),
        (
            doc({"op": "formula", "column": "c", "expression": ""}),
            "steps[0] (formula): expression",
            "at least 1",
        ),
        (
            doc({"op": "join", "right": "nowhere", "on": ["k"]}),
            "steps[0] (join): frame",
            "unknown frame 'nowhere'",
        ),
        (doc({"op": "cast", "columns": {"c": "date"}, "formats": {"c": "%d.%b"}}), "steps[0] (cast)", "%b"),
        (
            doc({"op": "python", "code": "def transform(r): return r", "columns": {"a": "int64"}}),
            "steps[0] (python)",
            "trusted",
        ),
        (doc(outputs={"o": "nowhere"}), "outputs.o", "unknown frame 'nowhere'"),
        ({**doc(), "version": 2}, "version", "Input should be 1"),
        ({**doc(), "sources": {"t": {"kind": "excel"}}}, "sources.t", "tag 'excel'"),
        ({**doc(), "sources": {}}, "sources", "at least 1"),
        ({**doc(), "steps": {"op": "x"}}, "steps", "must be a list"),
        (doc("not a step"), "steps[0]", "must be an object"),
    ],
)
def test_malformed_flows_name_the_step_operator_and_parameter(
    data: dict[str, Any], where: str, what: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Flow.from_dict(data)
    text = str(info.value)
    assert where in text and what in text, text
    assert "fix:" in text


def test_invalid_json_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"version": 1,,}')
    with pytest.raises(ValidationError, match="not valid JSON"):
        Flow.load(tmp_path / "bad.json")
    with pytest.raises(NotFound):
        Flow.load(tmp_path / "missing.json")


def test_custom_python_is_refused_without_the_trust_flag(tmp_path: Path) -> None:
    flow = Flow.from_dict(
        doc(
            {
                "op": "python",
                "trusted": True,
                "code": "def transform(row):\n    return {'a': row['a'] + 1}\n",
                "columns": {"a": "int64"},
            }
        )
    )
    data = pl.DataFrame({"a": [1, 2]})
    with pytest.raises(ValidationError, match=r"steps\[0\] \(python\): code: .*refused unless you trust"):
        flow.fit(data)
    fitted = flow.fit(data, trust_custom_code=True)
    assert fitted.transform(data)["a"].to_list() == [2, 3]
    assert fitted.transform_record({"a": 5}) == {"a": 6}
    fitted.save(tmp_path / "fitted.json")
    with pytest.raises(ValidationError, match="refused unless you trust"):
        FittedFlow.load(tmp_path / "fitted.json")
    assert FittedFlow.load(tmp_path / "fitted.json", trust_custom_code=True).transform(data)[
        "a"
    ].to_list() == [2, 3]


def test_an_edited_fitted_flow_is_rejected(tmp_path: Path) -> None:
    flow = Flow.from_dict(doc({"op": "one_hot", "column": "c"}))
    fitted = flow.fit(pl.DataFrame({"c": ["a", "b", "a"]}))
    data = fitted.to_dict()
    assert data["states"][0]["state"] == {"categories": ["a", "b"]}

    tampered = json.loads(json.dumps(data))
    tampered["states"][0]["state"] = {"categories": "a"}
    with pytest.raises(ValidationError, match=r"malformed fitted state"):
        FittedFlow.from_dict(tampered)

    tampered = json.loads(json.dumps(data))
    tampered["flow"]["steps"][0]["column"] = "d"
    with pytest.raises(ValidationError, match="does not match its recorded hash"):
        FittedFlow.from_dict(tampered)

    tampered = json.loads(json.dumps(data))
    tampered["states"][0]["state"]["categories"] = ["a", "b", "c"]
    with pytest.raises(ValidationError, match="recorded output schema differs"):
        FittedFlow.from_dict(tampered)

    with pytest.raises(ValidationError, match="not a fitted flow"):
        FittedFlow.from_dict({"format": "something else"})
