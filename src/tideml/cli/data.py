"""`tide data …`: synthetic data generators (a thin layer over `tideml.datasets`)."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tideml.cli._app import JsonOption, app, console, emit_json

__all__ = ["data_app"]

data_app = typer.Typer(
    help="Generate synthetic data: auto-insurance customers and claims in the article's raw schema.",
    no_args_is_help=True,
)


class OutputFormat(StrEnum):
    """File formats `tide data generate` writes."""

    csv = "csv"
    parquet = "parquet"


# `AutoclaimsConfig`'s defaults, written out so that `tide data --help` does not import the generator
# (numpy, polars, pyarrow); a test checks they match.
_DEFAULTS: dict[str, Any] = {
    "policies": 5000,
    "seed": 0,
    "fraud_rate": 0.033,
    "female_fraud_odds_ratio": 0.3,
    "other_gender_fraud_odds_ratio": 0.2,
    "female_share_shift": 0.0,
}


@data_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write customers and claims into.")],
    policies: Annotated[int, typer.Option("--policies", "-n", help="Number of policies.")] = _DEFAULTS[
        "policies"
    ],
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = _DEFAULTS["seed"],
    file_format: Annotated[OutputFormat, typer.Option("--format", help="File format.")] = OutputFormat.csv,
    with_probability: Annotated[
        bool, typer.Option("--with-probability", help="Add each claim's true fraud probability.")
    ] = False,
    fraud_rate: Annotated[float, typer.Option("--fraud-rate", help="Target overall fraud rate.")] = _DEFAULTS[
        "fraud_rate"
    ],
    female_fraud_odds_ratio: Annotated[
        float,
        typer.Option("--female-fraud-odds-ratio", help="Fraud odds of Female vs Male; 1 removes the gap."),
    ] = _DEFAULTS["female_fraud_odds_ratio"],
    other_gender_fraud_odds_ratio: Annotated[
        float, typer.Option("--other-gender-fraud-odds-ratio", help="Fraud odds of Unkown/Other vs Male.")
    ] = _DEFAULTS["other_gender_fraud_odds_ratio"],
    female_share_shift: Annotated[
        float,
        typer.Option("--female-share-shift", help="Share of customers moved from Male to Female."),
    ] = _DEFAULTS["female_share_shift"],
    json_output: JsonOption = False,
) -> None:
    """Write customers and claims of N synthetic policies (same seed, same bytes)."""
    from tideml._progress import progress_bar
    from tideml.datasets.autoclaims import CHUNK_POLICIES, AutoclaimsConfig, generate_autoclaims

    config = AutoclaimsConfig(
        policies=policies,
        seed=seed,
        fraud_rate=fraud_rate,
        female_fraud_odds_ratio=female_fraud_odds_ratio,
        other_gender_fraud_odds_ratio=other_gender_fraud_odds_ratio,
        female_share_shift=female_share_shift,
    )
    show_progress = not json_output and math.ceil(config.policies / CHUNK_POLICIES) > 1
    with progress_bar("Generating policies", total=config.policies, enabled=show_progress) as bar:
        result = generate_autoclaims(
            out,
            config,
            file_format=file_format.value,
            with_probability=with_probability,
            on_chunk=bar.advance,
        )
    summary = result.to_dict()
    if json_output:
        emit_json(summary)
        return
    table = Table(title=f"{result.policies:,} policies, seed {config.seed}", title_justify="left")
    table.add_column("table")
    table.add_column("file", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("size", justify="right")
    for name, info in summary["files"].items():
        table.add_row(name, Path(info["path"]).name, f"{info['rows']:,}", _size(info["bytes"]))
    console.print(table)
    console.print(f"folder {result.claims_path.parent}", highlight=False, soft_wrap=True)
    console.print(
        f"fraud rate {result.fraud_rate:.2%} ({result.fraud_count:,} claims), "
        f"written in {result.elapsed_seconds:.2f} s",
        highlight=False,
    )


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{value:,.1f} GB"


app.add_typer(data_app, name="data")
