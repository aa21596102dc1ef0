"""The `tide` command: a thin layer over the Python API; one module per command group."""

from __future__ import annotations

import sys

from rich.text import Text

# Importing a command module registers its group on `app`.
from tideml.cli import clarify as _clarify  # noqa: F401
from tideml.cli import data as _data  # noqa: F401
from tideml.cli import features as _features  # noqa: F401
from tideml.cli import lineage as _lineage  # noqa: F401
from tideml.cli import models as _models  # noqa: F401
from tideml.cli import monitor as _monitor  # noqa: F401
from tideml.cli import pipelines as _pipelines  # noqa: F401
from tideml.cli import serving as _serving  # noqa: F401
from tideml.cli import train as _train  # noqa: F401
from tideml.cli import workspace as _workspace  # noqa: F401
from tideml.cli import wrangle as _wrangle  # noqa: F401
from tideml.cli._app import app, console_err
from tideml.errors import TideError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of `tide`: a user's mistake becomes one line on stderr and a non-zero exit.

    Typer's standalone mode already turns usage errors into a message and exit code 2; what reaches
    here is a `TideError` raised by the library.
    """
    try:
        app(args=argv, prog_name="tide")
    except TideError as exc:
        console_err.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        sys.exit(exc.exit_code)
