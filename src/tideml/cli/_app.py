"""The Typer application and the small helpers every command module shares.

`tide` imports a command module only when one of its commands runs: `COMMANDS` names every top-level
command and group, the module that registers it on `app` and the help line `tide --help` shows, so
listing them imports nothing. A command module imports its heavy stack (the workspace, polars,
SQLAlchemy…) inside the commands that use it, so `tide GROUP --help` stays cheap too.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
import typer.core
import typer.main
from rich.console import Console

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = [
    "COMMANDS",
    "JsonOption",
    "WorkspaceOption",
    "app",
    "console",
    "console_err",
    "emit_json",
    "open_workspace",
]

# Every top-level command and group of `tide`, in the order `tide --help` lists them:
# name -> (module of `tideml.cli` that registers it on `app`, the help line `tide --help` shows).
# A test checks this table against the modules' own registrations and help.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serving", "Run an endpoint: POST /invocations, GET /ping, /health, /ready, /metrics, /docs."),
    "batch-transform": (
        "serving",
        "Score a Parquet file with a registered model, streaming, into a Parquet file.",
    ),
    "init": ("workspace", "Create a workspace with embedded defaults (SQLite metadata, local folders)."),
    "clarify": ("clarify", "Bias metrics and SHAP explanations (Clarify-compatible)."),
    "data": (
        "data",
        "Generate synthetic data: auto-insurance customers and claims in the article's raw schema.",
    ),
    "features": ("features", "The feature store: groups, records, ingest, SQL and point-in-time datasets."),
    "lineage": ("lineage", "Provenance of every artifact."),
    "models": ("models", "Model registry: groups, versions, approval, aliases."),
    "monitor": (
        "monitor",
        "Model monitoring: baselines, data-quality/drift/model-quality checks, schedules, retraining.",
    ),
    "pipeline": (
        "pipelines",
        "Pipelines: run a DAG of steps with caching, resume failed runs, browse run history.",
    ),
    "endpoints": ("serving", "Real-time endpoints: deploy, list, describe, delete."),
    "keys": ("serving", "API keys of the endpoints (stored hashed), with rate limits."),
    "train": (
        "train",
        "Train, tune and de-bias XGBoost models; every number is measured on a held-out entity split.",
    ),
    "workspace": ("workspace", "Inspect the workspace."),
    "artifacts": ("workspace", "The content-addressed artifact store."),
    "wrangle": ("wrangle", "Data wrangling: run flows, analyse tables, export fitted flows."),
}


class _Unloaded(typer.core.TyperCommand):
    """A command whose module is not imported yet: `tide --help` shows its help line; running it
    imports the module and hands over to the real command."""

    def __init__(self, name: str, module: str, help_line: str) -> None:
        super().__init__(name, help=help_line)
        self.module = module

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        # The group parses the command's arguments through this call, then invokes `ctx.command`:
        # the context built here belongs to the real command.
        return _load(self.module, self.name or "").make_context(*args, **kwargs)


def _load(module: str, name: str) -> Any:
    importlib.import_module(f"tideml.cli.{module}")  # registers its commands on `app`
    group = typer.main.get_command(app)
    command = group.commands.get(name) if isinstance(group, typer.core.TyperGroup) else None
    if command is None or isinstance(command, _Unloaded):
        raise RuntimeError(f"tideml.cli.{module} does not register `tide {name}` (see COMMANDS)")
    return command


class LazyGroup(typer.core.TyperGroup):
    """The root `tide` group: every name in `COMMANDS` is listed, a module is imported on first use."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        loaded = dict(self.commands)  # from modules imported already
        commands = {
            name: loaded.pop(name) if name in loaded else _Unloaded(name, module, help_line)
            for name, (module, help_line) in COMMANDS.items()
        }
        self.commands = commands | loaded


def _root() -> None:
    # A callback makes `app` a group even before any command module has registered a command.
    pass


app = typer.Typer(
    name="tide",
    help="tideml: the machine-learning lifecycle for tabular data, self-hosted.",
    cls=LazyGroup,
    callback=_root,
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


def open_workspace(path: Path | None) -> Workspace:
    """`Workspace.open(path)`; the workspace stack (SQLAlchemy, Alembic) loads only when a command runs."""
    from tideml.workspace import Workspace

    return Workspace.open(path)


def emit_json(data: Any) -> None:
    """Write JSON to stdout (sorted keys, indented), for `--json` on every command that prints data."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
