"""Properties of the count-table metrics (reference §7): a brute-force row oracle written straight from
the formulas, invariances, sign flips when a and d swap, and bootstrap intervals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideml.clarify import Facet, bias_report

SIGNED = ["CI", "DPL", "DPPL", "DCA", "DCR", "RD", "SD", "DAR", "DRR", "AD", "TE", "CDDL", "CDDPL"]

rows_strategy = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 1), st.sampled_from("uvw")),
    min_size=4,
    max_size=60,
).filter(lambda rows: 0 < sum(r[0] for r in rows) < len(rows))


def frame_of(rows: list[tuple[int, int, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["f", "y", "yhat", "g"])


def report(frame: pd.DataFrame, d_value: int = 1, **kw: Any) -> dict[str, tuple[float | None, str | None]]:
    r = bias_report(
        frame,
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [d_value])],
        group_variable="g",
        predicted_label="yhat",
        post_training=[
            c for c in ("AD", "CDDPL", "DAR", "DCA", "DCR", "DI", "DPPL", "DRR", "GE", "RD", "SD", "TE")
        ],
        **kw,
    )
    out = {}
    for stage in (r.pre_training, r.post_training):
        assert stage is not None
        for m in stage.facets["f"][0].metrics:
            out[m.name] = (m.value, m.error)
    return out


# -- oracle ---------------------------------------------------------------------------------------------
def div(a: float, b: float) -> float | None:
    if b == 0:
        return None if a == 0 else math.copysign(math.inf, a)
    return a / b


def minus(x: float | None, y: float | None) -> float | None:
    if x is None or y is None:
        return None
    if math.isinf(x) and math.isinf(y) and x > 0 and y > 0:
        return None
    return x - y


def oracle(rows: list[tuple[int, int, int, str]]) -> dict[str, float | None]:
    a = [r for r in rows if r[0] == 0]
    d = [r for r in rows if r[0] == 1]

    def cnt(group: list[Any], y: int | None = None, p: int | None = None) -> int:
        return sum(1 for r in group if (y is None or r[1] == y) and (p is None or r[2] == p))

    na, nd = len(a), len(d)
    qa, qd = cnt(a, 1) / na, cnt(d, 1) / nd
    pa = [cnt(a, 0) / na, cnt(a, 1) / na]
    pd_ = [cnt(d, 0) / nd, cnt(d, 1) / nd]
    kl: float = 0.0
    for x, z in zip(pa, pd_, strict=True):
        if x > 0:
            kl += math.inf if z == 0 else x * math.log(x / z)
    m = [(x + z) / 2 for x, z in zip(pa, pd_, strict=True)]
    js = 0.5 * sum(x * math.log(x / mm) for x, mm in zip(pa, m, strict=True) if x > 0) + 0.5 * sum(
        z * math.log(z / mm) for z, mm in zip(pd_, m, strict=True) if z > 0
    )

    def cdd(col: int) -> float | None:
        total_pos = sum(1 for r in rows if r[col] == 1)
        total_neg = sum(1 for r in rows if r[col] == 0)
        if total_pos == 0 or total_neg == 0:
            return None
        acc = 0.0
        for g in sorted({r[3] for r in rows}):
            sub = [r for r in rows if r[3] == g]
            rej = [r for r in sub if r[col] == 0]
            acc_rows = [r for r in sub if r[col] == 1]
            dd = (sum(r[0] for r in rej) / len(rej) if rej else 0.0) - (
                sum(r[0] for r in acc_rows) / len(acc_rows) if acc_rows else 0.0
            )
            acc += len(sub) * dd
        return acc / len(rows)

    tp = {k: cnt(g, 1, 1) for k, g in (("a", a), ("d", d))}
    fp = {k: cnt(g, 0, 1) for k, g in (("a", a), ("d", d))}
    fn = {k: cnt(g, 1, 0) for k, g in (("a", a), ("d", d))}
    tn = {k: cnt(g, 0, 0) for k, g in (("a", a), ("d", d))}
    n = len(rows)
    b = [r[2] - r[1] + 1 for r in rows]
    mu = sum(b) / n
    return {
        "CI": (na - nd) / n,
        "DPL": qa - qd,
        "KL": kl,
        "JS": js,
        "LP": math.sqrt(sum((x - z) ** 2 for x, z in zip(pa, pd_, strict=True))),
        "TVD": 0.5 * sum(abs(x - z) for x, z in zip(pa, pd_, strict=True)),
        "KS": max(abs(x - z) for x, z in zip(pa, pd_, strict=True)),
        "CDDL": cdd(1),
        "DPPL": cnt(a, p=1) / na - cnt(d, p=1) / nd,
        "DI": div(cnt(d, p=1) / nd, cnt(a, p=1) / na),
        "DCA": minus(div(cnt(a, 1), cnt(a, p=1)), div(cnt(d, 1), cnt(d, p=1))),
        "DCR": minus(div(cnt(d, 0), cnt(d, p=0)), div(cnt(a, 0), cnt(a, p=0))),
        "RD": minus(div(tp["a"], tp["a"] + fn["a"]), div(tp["d"], tp["d"] + fn["d"])),
        "SD": minus(div(tn["d"], tn["d"] + fp["d"]), div(tn["a"], tn["a"] + fp["a"])),
        "DAR": minus(div(tp["a"], tp["a"] + fp["a"]), div(tp["d"], tp["d"] + fp["d"])),
        "DRR": minus(div(tn["d"], tn["d"] + fn["d"]), div(tn["a"], tn["a"] + fn["a"])),
        "AD": (tp["a"] + tn["a"]) / na - (tp["d"] + tn["d"]) / nd,
        "TE": minus(div(fn["d"], fp["d"]), div(fn["a"], fp["a"])),
        "CDDPL": cdd(2),
        "GE": None if mu == 0 else sum((x / mu) ** 2 - 1 for x in b) / (2 * n),
    }


@settings(max_examples=60, deadline=None)
@given(rows_strategy)
def test_count_table_metrics_equal_the_row_oracle(rows: list[tuple[int, int, int, str]]) -> None:
    got = report(frame_of(rows))
    want = oracle(rows)
    for code, expected in want.items():
        value, error = got[code]
        if expected is None:
            assert value is None and error is not None, code
        elif math.isinf(expected):
            assert value == expected, code
        else:
            assert value == pytest.approx(expected, abs=1e-12), code


@settings(max_examples=60, deadline=None)
@given(rows_strategy)
def test_swapping_facet_groups_flips_signs_and_inverts_di(rows: list[tuple[int, int, int, str]]) -> None:
    frame = frame_of(rows)
    d1 = report(frame, 1)
    d0 = report(frame, 0)

    def every_subgroup_has_both(col: int) -> bool:
        return all({r[col] for r in rows if r[3] == g} == {0, 1} for g in {r[3] for r in rows})

    for code in SIGNED:
        # CDD counts a share with a zero denominator as 0, which breaks the symmetry (a division by 0)
        if (code == "CDDL" and not every_subgroup_has_both(1)) or (
            code == "CDDPL" and not every_subgroup_has_both(2)
        ):
            continue
        v1, v0 = d1[code][0], d0[code][0]
        if v1 is None or v0 is None or not (math.isfinite(v1) and math.isfinite(v0)):
            continue
        assert v0 == pytest.approx(-v1, abs=1e-12), code
    di1, di0 = d1["DI"][0], d0["DI"][0]
    if di1 is not None and di0 is not None and 0 < di1 < math.inf:
        assert di0 == pytest.approx(1 / di1)
    for code in ("JS", "LP", "TVD", "KS", "GE"):
        v1, v0 = d1[code][0], d0[code][0]
        assert (v1 is None and v0 is None) or v0 == pytest.approx(v1), code


@settings(max_examples=40, deadline=None)
@given(rows_strategy, st.integers(0, 2**31 - 1))
def test_every_metric_is_invariant_to_row_order(rows: list[tuple[int, int, int, str]], seed: int) -> None:
    frame = frame_of(rows)
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    assert report(frame) == report(shuffled)


@settings(max_examples=40, deadline=None)
@given(rows_strategy)
def test_distribution_metrics_of_a_binary_label(rows: list[tuple[int, int, int, str]]) -> None:
    v = report(frame_of(rows))
    dpl = v["DPL"][0]
    assert dpl is not None
    assert v["TVD"][0] == pytest.approx(abs(dpl))
    assert v["KS"][0] == pytest.approx(abs(dpl))
    assert v["LP"][0] == pytest.approx(math.sqrt(2) * abs(dpl))


def test_balanced_facet_has_zero_class_imbalance_and_parity_has_di_one() -> None:
    rng = np.random.default_rng(3)
    f = np.repeat([0, 1], 500)
    yhat = np.concatenate([np.repeat([1, 0], [200, 300]), np.repeat([1, 0], [200, 300])])
    frame = pd.DataFrame(
        {"f": f, "y": rng.integers(0, 2, 1000), "yhat": yhat, "g": rng.choice(list("uv"), 1000)}
    )
    v = report(frame)
    assert v["CI"][0] == 0.0
    assert v["DI"][0] == 1.0
    assert v["DPPL"][0] == 0.0


def test_ge_does_not_depend_on_the_facet() -> None:
    rng = np.random.default_rng(4)
    frame = frame_of([(int(a), int(b), int(c), "u") for a, b, c in rng.integers(0, 2, (200, 3))])
    other = frame.assign(f=rng.integers(0, 2, 200))
    assert report(frame)["GE"] == report(other)["GE"]


def test_bootstrap_intervals_cover_the_estimate_and_shrink_with_n() -> None:
    rng = np.random.default_rng(5)

    def widths(n: int) -> tuple[float, float, float]:
        frame = pd.DataFrame(
            {
                "f": rng.integers(0, 2, n),
                "y": (rng.random(n) < 0.3).astype(int),
                "g": rng.choice(list("uv"), n),
            }
        )
        r = bias_report(
            frame,
            label="y",
            label_values_or_threshold=[1],
            facets=[Facet("f", [1])],
            pre_training=["DPL", "CI"],
            bootstrap=400,
            seed=1,
        )
        m = r.pre_training.facets["f"][0].metric("DPL")  # type: ignore[union-attr]
        assert m.ci is not None and m.ci[0] is not None and m.ci[1] is not None and m.value is not None
        assert m.ci[0] <= m.value <= m.ci[1]
        return m.ci[1] - m.ci[0], m.ci[0], m.ci[1]

    small, _, _ = widths(400)
    large, _, _ = widths(40_000)
    assert large < small / 5  # width ∝ 1/√n: 100x the rows, about 10x narrower


def test_bootstrap_matches_row_resampling_in_distribution() -> None:
    """The multinomial count-table bootstrap and a row-resampling bootstrap agree on the interval."""
    rng = np.random.default_rng(6)
    n = 2000
    frame = pd.DataFrame({"f": rng.integers(0, 2, n), "y": (rng.random(n) < 0.4).astype(int)})
    r = bias_report(
        frame,
        label="y",
        label_values_or_threshold=[1],
        facets=[Facet("f", [1])],
        pre_training=["DPL"],
        bootstrap=2000,
        seed=2,
    )
    lo, hi = r.pre_training.facets["f"][0].metric("DPL").ci  # type: ignore[union-attr, misc]
    f, y = frame["f"].to_numpy(), frame["y"].to_numpy()
    reps = []
    for _ in range(2000):
        idx = rng.integers(0, n, n)
        ff, yy = f[idx], y[idx]
        reps.append(yy[ff == 0].mean() - yy[ff == 1].mean())
    rlo, rhi = np.quantile(reps, [0.025, 0.975])
    assert lo == pytest.approx(rlo, abs=0.006)
    assert hi == pytest.approx(rhi, abs=0.006)
