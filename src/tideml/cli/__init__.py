"""The `tide` command: a thin layer over the Python API; one module per command group.

The command modules are not imported here: `app` (see `_app.py`) imports the module of a command
when that command runs, and `tide --help` lists every command without importing any of them.
"""

from __future__ import annotations

import sys

from rich.text import Text

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
