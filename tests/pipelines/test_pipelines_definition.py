"""Definitions, parameters, code versions and cache keys: the pure layer, no workspace."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest
import tide_pipeline_samples as samples
from hypothesis import given
from hypothesis import strategies as st

from tideml.errors import ValidationError
from tideml.pipelines import (
    RetryPolicy,
    cache_key,
    cache_key_material,
    canonical_json,
    code_version,
    evaluate_condition,
    load_pipeline,
    pipeline,
    step,
)
from tideml.pipelines.definition import Pipeline


def test_definition_json_names_steps_kinds_parameters_and_inferred_edges() -> None:
    d = samples.diamond.to_json()
    json.dumps(d)  # plain JSON
    steps = {s["name"]: s for s in d["steps"]}
    assert list(steps) == ["source", "other", "square", "total", "gate", "combine", "below_bar"]
    assert steps["gate"]["kind"] == "condition" and steps["below_bar"]["kind"] == "fail"
    assert steps["source"]["arguments"] == {"n": {"$param": "n"}}
    assert (
        steps["gate"]["arguments"]["expression"] == "quality.auc >= ${min_auc} and abs(quality.dppl) <= 0.1"
    )
    assert steps["combine"]["branch"] == [{"condition": "gate", "when": True}]
    assert steps["below_bar"]["branch"] == [{"condition": "gate", "when": False}]
    edges = {tuple(e) for e in d["edges"]}
    assert {("source", "square"), ("square", "total"), ("total", "gate"), ("gate", "combine")} <= edges
    assert ("total", "combine") in edges and ("other", "combine") in edges
    assert ("source", "other") not in edges and ("other", "square") not in edges
    assert d["parameters"]["n"]["default"] == 5 and d["parameters"]["min_auc"]["type"] == "number"
    assert all(len(s["code_version"]) == 64 for s in d["steps"])


def test_after_adds_an_ordering_edge_without_data() -> None:
    @pipeline
    def ordered(n: int = 2) -> None:
        first = samples.other(k=n)
        samples.source.with_options(after=[first])(n=n)

    assert ("other", "source") in ordered.graph.edges()
    assert ordered.graph.node("source").upstream() == ["other"]


def test_the_same_definition_hashes_the_same_each_time_it_is_built() -> None:
    again = Pipeline(samples.diamond.fn, name="diamond")
    assert again.to_json() == samples.diamond.to_json()
    assert again.definition_sha256 == samples.diamond.definition_sha256


def test_parameters_are_validated_with_the_declared_types() -> None:
    assert samples.diamond.validate_params({"n": "7"}) == {"n": 7, "k": 2, "min_auc": 0.7}
    with pytest.raises(ValidationError) as bad:
        samples.diamond.validate_params({"n": "many"})
    assert bad.value.field == "n" and "int" in (bad.value.fix or "")
    with pytest.raises(ValidationError) as unknown:
        samples.diamond.validate_params({"rows": 3})
    assert unknown.value.field == "rows" and "n, k, min_auc" in (unknown.value.fix or "")
    with pytest.raises(ValidationError) as missing:
        samples.from_file.validate_params({})
    assert missing.value.field == "path"


def test_outside_a_pipeline_a_step_is_its_plain_function(marks: Path) -> None:
    assert samples.other(k=3) == {"k": 3}
    assert samples.executions() == ["other"]


def test_definition_mistakes_are_refused_with_a_fix() -> None:
    @pipeline
    def twice() -> None:
        samples.other(k=1)
        samples.other(k=2)

    with pytest.raises(ValidationError, match="two steps share this name") as dup:
        _ = twice.graph
    assert "with_options(name=" in (dup.value.fix or "")

    with pytest.raises(ValidationError, match="not a module-level function"):
        step(lambda x: x)

    @pipeline
    def branching(flag: bool = True) -> None:
        if flag:
            samples.other(k=1)

    with pytest.raises(ValidationError, match="condition step"):
        _ = branching.graph

    @pipeline
    def unstable(n: int = 1) -> None:
        samples.other(k={1, 2})  # type: ignore[arg-type]

    with pytest.raises(ValidationError, match="no stable JSON form"):
        _ = unstable.graph

    @pipeline
    def whole(n: int = 4) -> None:
        samples.count(frame=samples.split(data=samples.source(n=n)))

    with pytest.raises(ValidationError, match="multi-output"):
        _ = whole.graph

    @pipeline
    def wrong_field(n: int = 4) -> None:
        samples.split(data=samples.source(n=n))["validation"]

    with pytest.raises(ValidationError, match="no output 'validation'"):
        _ = wrong_field.graph

    @pipeline
    def bad_rule(n: int = 4) -> None:
        from tideml.pipelines import condition

        condition("gate", "auc is high", metrics=samples.total(data=samples.square(data=samples.source(n=n))))

    with pytest.raises(ValidationError, match="cannot parse rule"):
        _ = bad_rule.graph


def _load(tmp_path: Path, name: str, body: str) -> Any:
    file = tmp_path / f"{name}.py"
    file.write_text(textwrap.dedent(body))
    return load_pipeline(f"{file}:pipe")


def test_code_version_ignores_formatting_comments_and_docstrings_but_not_logic(tmp_path: Path) -> None:
    base = """
        from tideml.pipelines import pipeline, step

        @step
        def f(x: int) -> int:
            return x + 1

        @pipeline
        def pipe(x: int = 1) -> None:
            f(x=x)
    """
    cosmetic = """
        from tideml.pipelines import pipeline, step

        @step(retry=2)
        def f(x: int) -> int:
            '''Add one.'''
            # a comment
            return (x
                    + 1)

        @pipeline
        def pipe(x: int = 1) -> None:
            f(x=x)
    """
    logic = base.replace("x + 1", "x + 2")
    versions = [
        _load(tmp_path, n, b).graph.node("f").code_version
        for n, b in [("v_base", base), ("v_cosmetic", cosmetic), ("v_logic", logic)]
    ]
    assert versions[0] == versions[1]
    assert versions[0] != versions[2]
    assert code_version(samples.square.fn, "2") == code_version(samples.total.fn, "2")
    assert code_version(samples.square.fn, "2") != code_version(samples.square.fn, "3")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@given(params=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=6), seed=st.integers())
def test_cache_keys_are_deterministic_and_independent_of_dict_order(
    params: dict[str, Any], seed: int
) -> None:
    inputs = {"data": "a" * 64, "metrics[0]": "b" * 64}
    one = cache_key_material(kind="python", code_version="c" * 64, parameters=params, inputs=inputs)
    two = cache_key_material(
        kind="python", code_version="c" * 64, parameters=_shuffled(params, random.Random(seed)), inputs=inputs
    )
    assert canonical_json(one) == canonical_json(two)
    assert cache_key(one) == cache_key(two)
    changed = cache_key_material(kind="python", code_version="d" * 64, parameters=params, inputs=inputs)
    assert cache_key(changed) != cache_key(one)
    other_input = cache_key_material(
        kind="python", code_version="c" * 64, parameters=params, inputs={**inputs, "data": "e" * 64}
    )
    assert cache_key(other_input) != cache_key(one)


def test_values_without_a_stable_json_form_are_refused() -> None:
    for bad in ({1, 2}, float("nan"), 2**70, {1: "x"}, object()):
        with pytest.raises(ValidationError):
            canonical_json({"p": bad})


def test_file_parameters_enter_the_key_by_content_not_by_path() -> None:
    a = cache_key_material(
        kind="python",
        code_version="c",
        parameters={"path": "/tmp/x1.csv"},
        inputs={},
        files={"path": "f" * 64},
    )
    b = cache_key_material(
        kind="python",
        code_version="c",
        parameters={"path": "/tmp/elsewhere.csv"},
        inputs={},
        files={"path": "f" * 64},
    )
    assert cache_key(a) == cache_key(b)


def test_conditions_use_the_registry_rule_grammar_with_and_or() -> None:
    metrics = {"test_auc": 0.81, "bias": {"dppl": -0.12}, "n": 3}
    ok = evaluate_condition("test_auc >= 0.8 and abs(bias.dppl) <= 0.2", metrics)
    assert ok["passed"] is True and [r["passed"] for r in ok["rules"]] == [True, True]
    bad = evaluate_condition("test_auc >= 0.8 and abs(bias.dppl) <= 0.1", metrics)
    assert bad["passed"] is False and "abs(bias.dppl) <= 0.1" in bad["summary"]
    assert evaluate_condition("test_auc >= 0.9 or n == 3", metrics)["passed"] is True
    missing = evaluate_condition("recall >= 0.5", [metrics, {"precision": 0.4}])
    assert missing["passed"] is False and "not in" in missing["rules"][0]["detail"]
    with pytest.raises(ValidationError, match="cannot parse rule"):
        evaluate_condition("test_auc >> 1", metrics)


def test_retry_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_seconds=0.5, backoff_rate=3, max_backoff_seconds=2)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 2.0, 2.0]
    assert policy.should_retry(1, ["builtins.RuntimeError"], fatal=False)
    assert not policy.should_retry(5, ["builtins.RuntimeError"], fatal=False)
    assert not policy.should_retry(1, ["tideml.errors.ValidationError"], fatal=False)
    assert not policy.should_retry(1, ["builtins.RuntimeError"], fatal=True)
    picky = RetryPolicy(max_attempts=3, retry_on=("ConnectionError",))
    assert picky.should_retry(1, ["builtins.ConnectionError", "builtins.OSError"], fatal=False)
    assert not picky.should_retry(1, ["builtins.KeyError"], fatal=False)
    assert picky.should_retry(1, ["tideml.pipelines.WorkerLost"], fatal=False)
    with pytest.raises(ValidationError) as bad:
        step(samples.other.fn, retry={"max_attempts": 0})
    assert bad.value.field == "retry.max_attempts"
    with pytest.raises(ValidationError) as bad_cache:
        step(samples.other.fn, cache="seven days")
    assert (bad_cache.value.field or "").startswith("cache")
