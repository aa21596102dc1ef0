"""The end-to-end demo behind `make demo`, on embedded defaults. Each issue extends it."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.console import Console

from tideml import Workspace
from tideml.datasets import generate_autoclaims

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--policies", type=int, default=20_000, help="synthetic policies to generate")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)

    console.rule("1. workspace")
    ws = Workspace.init(out / "workspace")
    for section, values in ws.info()["settings"].items():
        for key, value in values.items():
            console.print(f"  {section}.{key} = {value}")

    console.rule("2. synthetic auto-claims data")
    data = generate_autoclaims(out / "data", policies=args.policies, seed=7, with_probability=True)
    console.print(
        f"  {data.policies:,} policies, fraud rate {data.fraud_rate:.2%}, {data.elapsed_seconds:.1f} s"
    )
    for path in (data.customers_path, data.claims_path):
        ref = ws.put_artifact(path)
        console.print(f"  {path.name}: {path.stat().st_size:,} bytes, stored as sha256:{ref.sha256[:16]}…")
    ws.close()
    console.print(f"[green]demo finished[/]; everything it wrote is under {out}")


if __name__ == "__main__":
    main()
