"""The end-to-end demo behind `make demo`, on embedded defaults. Each issue extends it."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.console import Console

from tideml import Workspace

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    args = parser.parse_args()
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)

    console.rule("1. workspace")
    ws = Workspace.init(out / "workspace")
    for section, values in ws.info()["settings"].items():
        for key, value in values.items():
            console.print(f"  {section}.{key} = {value}")
    ws.close()
    console.print(f"[green]demo finished[/]; everything it wrote is under {out}")


if __name__ == "__main__":
    main()
