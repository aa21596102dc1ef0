"""Run the `tide` CLI in-process from a test (importable from any test: `pythonpath = ["tests"]`)."""

from __future__ import annotations

import pytest

from tideml.cli import main


def tide(capture: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`tide ARGS…` through `main()`; returns (exit code, stdout, stderr) as read from `capture`
    (capsys, or capfd where a command writes through file descriptors)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    out, err = capture.readouterr()
    return code, out, err
