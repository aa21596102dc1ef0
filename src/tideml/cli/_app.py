"""The Typer application and the small helpers every command module shares."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

__all__ = ["JsonOption", "WorkspaceOption", "app", "console", "console_err", "emit_json"]

app = typer.Typer(
    name="tide",
    help="tideml: the machine-learning lifecycle for tabular data, self-hosted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
console_err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (default: $TIDE_WORKSPACE, then ./tide-workspace).",
        show_default=False,
    ),
]


def emit_json(data: Any) -> None:
    """Write JSON to stdout (sorted keys, indented), for `--json` on every command that prints data."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
