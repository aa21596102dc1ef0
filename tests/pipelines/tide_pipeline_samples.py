"""Small pipelines the pipeline tests run (tiny steps; each records its executions in $TIDE_TEST_MARKS).

Steps append their name to `$TIDE_TEST_MARKS/executions.log` when they run, in whatever process runs
them, so tests can count real executions independently of what the engine reports.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from tideml.pipelines import condition, fail, pipeline, service_step, step


def marks_dir() -> Path:
    return Path(os.environ["TIDE_TEST_MARKS"])


def mark(name: str) -> None:
    folder = os.environ.get("TIDE_TEST_MARKS")
    if folder:
        with open(Path(folder) / "executions.log", "a", encoding="utf-8") as fh:
            fh.write(name + "\n")


def executions() -> list[str]:
    log = marks_dir() / "executions.log"
    return log.read_text().split() if log.exists() else []


# -- a diamond with an independent branch, a condition and a fail step ----------------------------
@step
def source(n: int) -> pl.DataFrame:
    """Rows 0..n-1."""
    mark("source")
    print(f"source: making {n} rows")
    return pl.DataFrame({"x": list(range(n))})


@step
def other(k: int) -> dict[str, int]:
    mark("other")
    return {"k": k}


@step
def square(data: pl.DataFrame) -> pl.DataFrame:
    mark("square")
    return data.with_columns(y=pl.col("x") ** 2)


@step
def total(data: pl.DataFrame) -> dict[str, Any]:
    mark("total")
    return {"sum": int(data["y"].sum()), "rows": data.height, "quality": {"auc": 0.8, "dppl": -0.05}}


@step
def combine(a: dict[str, Any], b: dict[str, int]) -> dict[str, Any]:
    mark("combine")
    return {"sum": a["sum"], "k": b["k"], "product": a["sum"] * b["k"]}


@pipeline
def diamond(n: int = 5, k: int = 2, min_auc: float = 0.7) -> None:
    """A small pipeline with a data-dependent gate."""
    data = source(n=n)
    extra = other(k=k)
    squared = square(data=data)
    summary = total(data=squared)
    gate = condition("gate", f"quality.auc >= {min_auc} and abs(quality.dppl) <= 0.1", metrics=summary)
    with gate.if_true():
        combine(a=summary, b=extra)
    with gate.if_false():
        fail("below_bar", "the model missed the quality bar", details=gate)


# -- parallelism -------------------------------------------------------------------------------------
@step
def meet(label: str, other: str, patience: float) -> dict[str, Any]:
    """Arrive at a rendezvous and wait up to `patience` s for `other`: both meet only if run concurrently."""
    mark(f"meet-{label}")
    print(f"{label} waiting for {other}")
    (marks_dir() / f"arrived-{label}").touch()
    deadline = time.time() + patience
    while not (marks_dir() / f"arrived-{other}").exists() and time.time() < deadline:
        time.sleep(0.02)
    return {"label": label, "pid": os.getpid(), "met": (marks_dir() / f"arrived-{other}").exists()}


@step
def pair(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted([a["label"], b["label"]])


@pipeline
def parallel(patience: float = 30.0) -> None:
    a = meet.with_options(name="meet_a")(label="a", other="b", patience=patience)
    pair(a=a, b=meet(label="b", other="a", patience=patience))


# -- retries and failures ------------------------------------------------------------------------------
@step(retry={"max_attempts": 3, "backoff_seconds": 0.2, "backoff_rate": 2.0})
def flaky(fail_times: int) -> dict[str, int]:
    """Fails its first `fail_times` attempts (counted in the marks folder)."""
    mark("flaky")
    attempts = executions().count("flaky")
    if attempts <= fail_times:
        raise RuntimeError(f"transient failure {attempts}")
    return {"attempts": attempts}


@step(retry={"max_attempts": 3, "backoff_seconds": 0.05, "retry_on": ["ConnectionError"]})
def picky(kind: str) -> int:
    mark("picky")
    raise (ConnectionError("flaky network") if kind == "network" else KeyError("bad data"))


@step
def needs_flag(data: pl.DataFrame) -> pl.DataFrame:
    """Fails unless `$TIDE_TEST_MARKS/flag` exists (the 'fix' a user makes before resuming)."""
    mark("needs_flag")
    if not (marks_dir() / "flag").exists():
        raise RuntimeError("the flag file is missing")
    return data.with_columns(z=pl.col("x") + 1)


@step
def finish(data: pl.DataFrame) -> dict[str, int]:
    mark("finish")
    return {"z_sum": int(data["z"].sum())}


@pipeline
def fragile(n: int = 4) -> None:
    finish(data=needs_flag(data=source(n=n)))


@pipeline
def retrying(fail_times: int = 2) -> None:
    flaky(fail_times=fail_times)


@pipeline
def choosy(kind: str = "network") -> None:
    picky(kind=kind)


# -- the kill/resume scenario: a step that blocks while $TIDE_TEST_MARKS/block exists --------------
@step
def slow(data: pl.DataFrame) -> pl.DataFrame:
    mark("slow")
    (marks_dir() / "slow-started").write_text(str(os.getpid()))
    deadline = time.time() + 120
    while (marks_dir() / "block").exists() and time.time() < deadline:
        time.sleep(0.05)
    return data.with_columns(z=pl.col("x") * 3)


@pipeline
def killable(n: int = 6) -> None:
    finish(data=slow(data=square(data=source(n=n))))


# -- codecs ----------------------------------------------------------------------------------------------
@step
def as_pandas(data: pl.DataFrame) -> pd.DataFrame:
    return data.to_pandas()


@step
def pandas_sum(frame: pd.DataFrame) -> float:
    assert isinstance(frame, pd.DataFrame)
    return float(frame["x"].sum())


@step
def raw_bytes(n: int) -> bytes:
    return bytes(range(n))


@step
def write_file(blob: bytes, tmp: str) -> Path:
    out = Path(tmp) / "blob.bin"
    out.write_bytes(blob[::-1])
    return out


@step
def read_file(path: Path, digest: str, rows: int) -> dict[str, Any]:
    assert isinstance(path, Path)
    return {"size": path.stat().st_size, "digest": digest, "rows": rows}


@step(outputs=("train", "test"))
def split(data: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {"train": data.filter(pl.col("x") % 2 == 0), "test": data.filter(pl.col("x") % 2 == 1)}


@step
def count(frame: pl.DataFrame) -> int:
    return frame.height


@pipeline
def formats(n: int = 6, tmp: str = "/tmp") -> None:
    data = source(n=n)
    pandas_sum(frame=as_pandas(data=data))
    blob = raw_bytes(n=n)
    stored = write_file(blob=blob, tmp=tmp)
    parts = split(data=data)
    read_file(
        path=stored.path,
        digest=stored.sha256,
        rows=count.with_options(name="count_test")(frame=parts["test"]),
    )
    count(frame=parts["train"])


class Opaque:
    pass


@step
def unpicklable(n: int) -> Any:
    return Opaque()


@pipeline
def opaque(n: int = 1) -> None:
    unpicklable(n=n)


# -- files whose content, not path, is part of the key -----------------------------------------------
@step(files=("path",))
def read_csv(path: str) -> pl.DataFrame:
    mark("read_csv")
    return pl.read_csv(path)


@pipeline
def from_file(path: str) -> None:
    count(frame=read_csv(path=path))


# -- expiry and disabled caching -------------------------------------------------------------------------
@step(cache="PT0.3S")
def short_lived(n: int) -> int:
    mark("short_lived")
    return n


@step(cache=False)
def uncached(n: int) -> int:
    mark("uncached")
    return n


@pipeline
def expiring(n: int = 1) -> None:
    short_lived(n=n)
    uncached(n=n)


# -- service steps ----------------------------------------------------------------------------------
def store_model(ws: Any, n: int) -> dict[str, Any]:
    """A stand-in training service: stores a 'model' artifact and reports metrics."""
    ref = ws.put_artifact(f"model with {n} trees".encode(), "application/json")
    return {"model_sha256": ref.sha256, "metrics": {"test_auc": 0.6 + n / 100}}


def keep_metrics(result: dict[str, Any]) -> dict[str, Any]:
    return {"model_sha256": result["model_sha256"], "metrics": result["metrics"]}


@pipeline
def governed(n: int = 20, group: str = "claims-fraud") -> None:
    """Train (a stand-in), register, approve if the group's policy passes, deploy only if approved."""
    from tideml.pipelines import StepOptions, approve_step, deploy_step, register_step

    trained = service_step(
        "train",
        "train",
        {"n": n},
        StepOptions(target="tide_pipeline_samples:store_model", result=keep_metrics),
    )
    version = register_step(
        "register", group=group, model_sha256=trained["model_sha256"], metrics=trained["metrics"]
    )
    approval = approve_step("approve", version=version)
    approved = condition("approved", "approved >= 1", metrics=approval)
    with approved.if_true():
        deploy_step("deploy", version=version["ref"])


# -- a step that uses the workspace it runs in ----------------------------------------------------
@step
def stored_size(ws: Any, payload: str) -> dict[str, Any]:
    """Stores the payload in the run's workspace: the runner passes `ws`, the pipeline never does."""
    ref = ws.put_artifact(payload.encode())
    return {"sha256": ref.sha256, "size": ref.size, "root": str(ws.root)}


@pipeline
def uses_workspace(payload: str = "hello") -> None:
    stored_size(payload=payload)
