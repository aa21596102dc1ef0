"""`python -m tideml.serving NAME [--workers N] [--port P] [-w WORKSPACE]`: run an endpoint.

The same as `tide serve`, without importing the whole command-line interface first: the lean way to
start an endpoint in a container or under a process manager.
"""

from __future__ import annotations

import argparse
import sys

from tideml.errors import TideError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, check the endpoint and serve it until SIGTERM; the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tideml.serving", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="endpoint name (deployed with `tide endpoints deploy`)")
    parser.add_argument("--workers", "-n", type=int, default=1)
    parser.add_argument("--port", "-p", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--online-store", default=None, help="online store URL (default: the workspace's)")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--workspace", "-w", default=None)
    args = parser.parse_args(argv)
    from tideml.serving.server import serve
    from tideml.workspace import Workspace

    try:
        ws = Workspace.open(args.workspace)
        return serve(
            ws,
            args.name,
            host=args.host,
            port=args.port,
            workers=max(1, args.workers),
            online_url=args.online_store,
            log_level=args.log_level,
        )
    except TideError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
