"""`tide` starts fast: listing commands imports no command module, help imports no heavy stack.

Every check looks at `sys.modules` of a fresh interpreter, not at timings, so a module-level import
of polars or SQLAlchemy creeping back into the start-up path fails here at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import tideml
from tideml.cli._app import COMMANDS, app
from tideml.errors import NotFound

# Libraries that cost 50-500 ms to import; none of them is needed to print help.
HEAVY = ("polars", "sqlalchemy", "alembic", "numpy", "pandas", "pyarrow", "sklearn", "xgboost", "duckdb")
COMMAND_MODULES = sorted({f"tideml.cli.{module}" for module, _ in COMMANDS.values()})


def run_python(code: str, *, env: dict[str, str] | None = None) -> str:
    """Run `code` in a fresh interpreter; return its stdout (stderr on failure)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def loaded_after(code: str) -> list[str]:
    """The tideml and heavy modules in `sys.modules` after running `code` in a fresh interpreter."""
    out = run_python(
        code
        + textwrap.dedent(
            f"""
            import json, sys
            watched = {list(HEAVY)!r}
            names = [m for m in sys.modules if m.startswith("tideml") or m.split(".")[0] in watched]
            print("\\n" + json.dumps(sorted(names)))
            """
        )
    )
    loaded: list[str] = json.loads(out.strip().splitlines()[-1])
    return loaded


def tide_calls(*argvs: list[str]) -> str:
    """Code that runs `tide ARGV` for each argv in one interpreter, as the console script does."""
    lines = ["import contextlib, io", "from tideml.cli import main"]
    for argv in argvs:
        lines += [
            "try:",
            "    with contextlib.redirect_stdout(io.StringIO()):",
            f"        main({argv!r})",
            "except SystemExit as exc:",
            "    assert exc.code in (0, None), exc.code",
        ]
    return "\n".join(lines) + "\n"


def test_import_tideml_loads_only_the_errors_and_the_lazy_loader() -> None:
    assert loaded_after("import tideml") == ["tideml", "tideml._lazy", "tideml.errors"]


def test_import_cli_and_root_help_load_no_command_module() -> None:
    expected = ["tideml", "tideml._lazy", "tideml.cli", "tideml.cli._app", "tideml.errors"]
    assert loaded_after("import tideml.cli") == expected
    assert loaded_after(tide_calls(["--help"])) == expected


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_loads_only_its_module_and_no_heavy_library(name: str) -> None:
    loaded = loaded_after(tide_calls([name, "--help"]))
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]
    assert [m for m in loaded if m in COMMAND_MODULES] == [f"tideml.cli.{COMMANDS[name][0]}"]
    assert "tideml.workspace" not in loaded


def test_root_help_from_the_table_equals_help_from_the_loaded_commands() -> None:
    """`COMMANDS`'s help lines and order are what the modules' own registrations print."""
    env = {"COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}
    render = (
        "import contextlib, io\nfrom tideml.cli import main\nbuf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "print(buf.getvalue())\n"
    )
    lazy = run_python(render, env=env)
    imports = "".join(f"import {module}\n" for module in COMMAND_MODULES)
    loaded = run_python(imports + render, env=env)
    assert lazy == loaded
    for name in COMMANDS:
        assert name in lazy


def test_commands_table_names_every_registration_and_its_module() -> None:
    for module in COMMAND_MODULES:
        __import__(module)
    registered = {info.name: info.callback.__module__ for info in app.registered_commands if info.callback}
    for group in app.registered_groups:
        commands = group.typer_instance.registered_commands if group.typer_instance else []
        registered[group.name or ""] = commands[0].callback.__module__ if commands[0].callback else ""
    assert registered == {name: f"tideml.cli.{module}" for name, (module, _) in COMMANDS.items()}
    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    assert list(root.commands) == list(COMMANDS)
    assert all(type(cmd).__name__ != "_Unloaded" for cmd in root.commands.values())


def test_unknown_command_is_a_usage_error_with_suggestions() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["nosuchgroup"])
    assert result.exit_code == 2
    assert "No such command 'nosuchgroup'" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["wrangel"])
    assert result.exit_code == 2
    assert "Did you mean 'wrangle'?" in result.output


def test_a_library_error_through_a_lazy_command_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from tideml.cli import main; main()", "workspace", "info", "-w", "nowhere"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == NotFound.exit_code
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: ")


def test_data_generate_defaults_are_the_generators() -> None:
    from tideml.cli.data import _DEFAULTS
    from tideml.datasets.autoclaims import AutoclaimsConfig

    assert {name: field.default for name, field in AutoclaimsConfig.model_fields.items()} == _DEFAULTS


def test_package_names_load_on_first_use() -> None:
    from tideml.artifacts import ArtifactRef, ArtifactStore
    from tideml.config import Settings, load_settings
    from tideml.workspace import Workspace

    assert tideml.Workspace is Workspace
    assert tideml.Settings is Settings and tideml.load_settings is load_settings
    assert tideml.ArtifactRef is ArtifactRef and tideml.ArtifactStore is ArtifactStore
    assert set(tideml.__all__) <= set(dir(tideml))
    namespace: dict[str, object] = {}
    exec("from tideml import *", namespace)
    assert {name for name in namespace if not name.startswith("__")} | {"__version__"} == set(tideml.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = tideml.nope  # type: ignore[attr-defined]
